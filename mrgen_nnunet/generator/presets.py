"""Model presets: `mrgen` (exactly MRGen's released configs), `small` (one GPU, 256 px), `cpu` (CPU, 128 px, f=4),
`tiny` (tests and the demo, 32–64 px).

Each preset is plain data: diffusers config dicts for the VAE, the UNet and the ControlNet's conditioning
embedding, the DDPM training schedule, the model resolution and the text-encoder spec. `build_*` turn them into
random-initialised diffusers models (training from scratch, or shells that `from_pretrained` fills).

The `tiny` preset uses 4 latent channels (f=8) instead of MRGen's 16: at 64 px and a few hundred steps a 16-channel
latent trains no better and the UNet's first conv is 4× cheaper. `mrgen` and `small` keep 16.

The `cpu` preset is for real data on a CPU at 128 px: MRGen's f=8 was made for 512 px slices, and at 128 px an
f=8 latent (16×16) lost the myocardial ring (tiny at 128 px: 18.5–19 dB PSNR on training slices). It keeps f=4
(32×32×8 latents) and puts the UNet's attention only at its two coarser levels (16² and 8² tokens), where it is
cheap; measured in benchmarks/README.md ("CPU autoencoder").
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from mrgen_nnunet.errors import MRGenError

# Verbatim values of MRGen's released ckpt/{vae,unet,controlnet,scheduler} configs (haoningwu/MRGen, MIT).
MRGEN_VAE = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "in_channels": 1,
    "latent_channels": 16,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 1,
    "sample_size": 512,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
MRGEN_UNET = {
    "act_fn": "silu",
    "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280],
    "center_input_sample": False,
    "class_embed_type": None,
    "conv_in_kernel": 3,
    "conv_out_kernel": 3,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 16,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "num_class_embeds": None,
    "only_cross_attention": False,
    "out_channels": 16,
    "resnet_time_scale_shift": "default",
    "sample_size": 512,
    "time_embedding_type": "positional",
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "upcast_attention": False,
    "use_linear_projection": False,
}
MRGEN_CONTROLNET = {  # the ControlNet keys that `ControlNetModel.from_unet` does not copy from the UNet
    "conditioning_channels": 1,
    "conditioning_embedding_out_channels": [16, 32, 96, 256],
    "controlnet_conditioning_channel_order": "rgb",
    "global_pool_conditions": False,
}
MRGEN_SCHEDULER = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "trained_betas": None,
    "clip_sample": False,
}
MRGEN_TEXT_MAX_LENGTH = 77
BIOMEDCLIP_HUB_ID = "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"


@dataclass
class Preset:
    """Sizes of one generator. `text_encoder` is a spec for `generator.text.load_text_encoder`."""

    name: str
    resolution: int
    vae: dict
    unet: dict
    controlnet: dict
    scheduler: dict
    text_encoder: dict
    lr: dict = field(default_factory=lambda: {"autoencoder": 5e-5, "text": 1e-5, "mask": 1e-5})
    kl_weight: float = 1e-4  # autoencoder loss: MSE + kl_weight * KL (summed over the latent)


def _small() -> Preset:
    vae = dict(MRGEN_VAE, block_out_channels=[64, 128, 256, 256], sample_size=256)
    unet = dict(MRGEN_UNET, block_out_channels=[160, 320, 640, 640], sample_size=32)
    return Preset("small", 256, vae, unet, dict(MRGEN_CONTROLNET), dict(MRGEN_SCHEDULER),
                  {"kind": "biomedclip", "source": BIOMEDCLIP_HUB_ID, "max_length": MRGEN_TEXT_MAX_LENGTH},
                  {"autoencoder": 1e-4, "text": 1e-4, "mask": 5e-5})


def _tiny() -> Preset:
    vae = dict(MRGEN_VAE, block_out_channels=[16, 32, 32, 32], layers_per_block=1, norm_num_groups=8,
               latent_channels=4, sample_size=64)
    unet = dict(MRGEN_UNET, block_out_channels=[32, 64], layers_per_block=1, norm_num_groups=8,
                cross_attention_dim=64, in_channels=4, out_channels=4, sample_size=8,
                down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"])
    controlnet = dict(MRGEN_CONTROLNET, conditioning_embedding_out_channels=[8, 8, 16, 16])
    text = {"kind": "tiny", "hidden_size": 64, "layers": 2, "heads": 2, "seed": 0, "max_length": 77}
    return Preset("tiny", 64, vae, unet, controlnet, dict(MRGEN_SCHEDULER), text,
                  {"autoencoder": 1e-3, "text": 5e-4, "mask": 5e-4})


def _cpu() -> Preset:
    vae = dict(MRGEN_VAE, block_out_channels=[16, 32, 32], down_block_types=["DownEncoderBlock2D"] * 3,
               up_block_types=["UpDecoderBlock2D"] * 3, layers_per_block=1, norm_num_groups=8, latent_channels=8,
               sample_size=128)
    unet = dict(MRGEN_UNET, block_out_channels=[32, 64, 128], layers_per_block=1, norm_num_groups=8,
                cross_attention_dim=64, in_channels=8, out_channels=8, sample_size=32,
                down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"])
    controlnet = dict(MRGEN_CONTROLNET, conditioning_embedding_out_channels=[8, 16, 32])  # 2 stride-2 convs: f=4
    text = {"kind": "tiny", "hidden_size": 64, "layers": 2, "heads": 2, "seed": 0, "max_length": 77}
    # KL 1e-6 (Stable Diffusion's weight): at 1e-4 the KL term of an 8x32x32 latent held the reconstruction at
    # 22 dB after 300 steps; the latent scale is fitted after training instead (train.fit_latent_scale)
    return Preset("cpu", 128, vae, unet, controlnet, dict(MRGEN_SCHEDULER), text,
                  {"autoencoder": 1e-3, "text": 3e-4, "mask": 3e-4}, kl_weight=1e-6)


def _mrgen() -> Preset:
    return Preset("mrgen", 512, copy.deepcopy(MRGEN_VAE), copy.deepcopy(MRGEN_UNET), dict(MRGEN_CONTROLNET),
                  dict(MRGEN_SCHEDULER), {"kind": "mrgen", "source": None, "max_length": MRGEN_TEXT_MAX_LENGTH})


PRESETS = {"mrgen": _mrgen, "small": _small, "cpu": _cpu, "tiny": _tiny}


def get_preset(name: str, resolution: int | None = None) -> Preset:
    """The preset `name` (fresh copy); `resolution` overrides its model resolution (must be divisible by 8)."""
    if name not in PRESETS:
        raise MRGenError(f"unknown preset {name!r}", "--preset", f"choose one of {', '.join(PRESETS)}")
    preset = PRESETS[name]()
    if resolution is not None:
        check_resolution(resolution, preset)
        preset.resolution = resolution
    return preset


def vae_factor(vae_config: dict) -> int:
    """Spatial down-sampling factor of an AutoencoderKL config: 2 ** (number of blocks - 1)."""
    return 2 ** (len(vae_config["block_out_channels"]) - 1)


def resolution_multiple(preset: Preset) -> int:
    """Resolutions must be multiples of this: VAE factor × the UNet's own down-sampling."""
    return vae_factor(preset.vae) * 2 ** (len(preset.unet["block_out_channels"]) - 1)


def check_resolution(resolution: int, preset: Preset) -> None:
    """MRGenError unless `resolution` is a positive multiple of `resolution_multiple(preset)`."""
    m = resolution_multiple(preset)
    if resolution <= 0 or resolution % m != 0:
        raise MRGenError(f"resolution {resolution} is not divisible by {m} (VAE factor × UNet down-sampling)",
                         "--resolution", f"use a multiple of {m}, e.g. {max(m, resolution // m * m)}")


def build_vae(preset: Preset):
    """Random-initialised `AutoencoderKL` (1 channel in/out, images in [-1, 1])."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(**{k: v for k, v in preset.vae.items() if k != "sample_size"},
                         sample_size=preset.resolution)


def build_unet(preset: Preset):
    """Random-initialised `UNet2DConditionModel` on latents (B, C, N/f, N/f)."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**preset.unet)  # sample_size is metadata only (MRGen's says 512)


def build_controlnet(unet, preset: Preset, conditioning_channels: int):
    """`ControlNetModel.from_unet(unet)` (weights copied from the stage-1 UNet), `conditioning_channels` mask channels."""
    from diffusers import ControlNetModel

    return ControlNetModel.from_unet(
        unet, conditioning_channels=conditioning_channels,
        conditioning_embedding_out_channels=tuple(preset.controlnet["conditioning_embedding_out_channels"]),
        controlnet_conditioning_channel_order=preset.controlnet["controlnet_conditioning_channel_order"])


def build_train_scheduler(preset: Preset):
    """DDPM ε-prediction schedule (1000 steps, scaled_linear 0.00085–0.012) used for training."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(preset.scheduler)
