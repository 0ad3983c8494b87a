"""Sampling: text (BiomedCLIP-style BERT) + mask (ControlNet) conditioned latent diffusion, batched CFG.

    pipe = MRGenPipeline.from_pretrained("runs/gen")          # our folder, or MRGen's released layout
    mask = pipe.encode_masks(label_maps)                       # (B, N, N) uint8 -> (B, C, N, N) in [-1, 1]
    out = pipe(prompts, mask, num_inference_steps=50, guidance_scale=7.0,
               generator=[torch.Generator().manual_seed(s) for s in seeds])
    out.images                                                 # (B, 1, N, N) float32 in [-1, 1]
    # translate mode: start from source images (B, 1, N, N) in [-1, 1] instead of noise
    out = pipe(prompts, mask, image=source_images, strength=0.6, translate="sdedit")    # or "inversion"
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.generator.folder import (
    CONFIG_FILE,
    GeneratorConfig,
    find_mrgen_controlnet,
    is_mrgen_layout,
    load_model,
    mrgen_default_config,
    read_config,
)
from mrgen_nnunet.generator.masks import encode_masks
from mrgen_nnunet.generator.text import SPEC_FILE, TextEncoder, load_mrgen_text_encoder, load_text_encoder


@dataclass
class MRGenPipelineOutput:
    images: torch.Tensor  # (B, 1, N, N) float32 in [-1, 1]
    latents: torch.Tensor  # (B, C, N/f, N/f) final denoised latents (before VAE scaling is undone)


def make_scheduler(config: dict, kind: str):
    """Inference scheduler from the saved (DDPM/PNDM) config: "ddim" (η=0) or "dpm" (DPM-Solver++ multistep)."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    if kind == "ddim":
        return DDIMScheduler.from_config(config)
    if kind == "dpm":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
    raise MRGenError(f"unknown scheduler {kind!r}", "--scheduler", "use ddim or dpm")


class MRGenPipeline:
    """VAE + UNet + ControlNet + frozen text encoder + scheduler config + GeneratorConfig."""

    def __init__(self, vae, unet, controlnet, text_encoder: TextEncoder, scheduler_config: dict,
                 config: GeneratorConfig):
        self.vae, self.unet, self.controlnet, self.text_encoder = vae, unet, controlnet, text_encoder
        self.scheduler_config = dict(scheduler_config)
        self.config = config

    @property
    def device(self) -> torch.device:
        return self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @classmethod
    def from_pretrained(cls, path: str | Path, controlnet: str | Path | None = None, device: str | torch.device = "cpu",
                        dtype: torch.dtype = torch.float32) -> MRGenPipeline:
        """Load our generator folder or MRGen's released HF layout.

        `controlnet`: our layout — a ControlNet folder replacing `path/controlnet`; MRGen layout — a name in
        `controlnet_model_zoo/` ("controlnet_T1_to_T2" or "T1_to_T2"), required when the zoo holds several.
        """
        from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel

        path = Path(path)
        if not path.is_dir():
            raise MRGenError("generator folder not found", path, "train one with `mrgen-nnunet train` or download it")
        if is_mrgen_layout(path):
            config = mrgen_default_config()
            text = load_mrgen_text_encoder(path / "text_encoder_BiomedCLIP", path / "tokenizer_BiomedCLIP", 77)
            control_dir = find_mrgen_controlnet(path, None if controlnet is None else str(controlnet))
        else:
            if not (path / CONFIG_FILE).is_file():
                raise MRGenError(f"{CONFIG_FILE} not found and not MRGen's layout either", path,
                                 "point at a folder written by `mrgen-nnunet train` or MRGen's release")
            config = read_config(path)
            text_dir = path / "text_encoder"
            spec = config.text_encoder
            if (text_dir / SPEC_FILE).is_file():
                import json

                spec = json.loads((text_dir / SPEC_FILE).read_text(encoding="utf-8"))
            text = load_text_encoder(spec, text_dir)
            control_dir = Path(controlnet) if controlnet is not None else path / "controlnet"
        vae = load_model(AutoencoderKL, path / "vae")
        unet = load_model(UNet2DConditionModel, path / "unet")
        ctrl = load_model(ControlNetModel, control_dir)
        sched_file = path / "scheduler" / "scheduler_config.json"
        if not sched_file.is_file():
            raise MRGenError("scheduler_config.json not found", sched_file.parent, "point at a complete generator")
        import json

        sched = json.loads(sched_file.read_text(encoding="utf-8"))
        if is_mrgen_layout(path):
            config.resolution = int(vae.config.sample_size)  # 512 for the released weights
        check_consistency(vae, unet, ctrl, text, config, path)
        for m in (vae, unet, ctrl):
            m.eval().requires_grad_(False)
        pipe = cls(vae, unet, ctrl, text, sched, config)
        return pipe.to(device, dtype)

    def to(self, device, dtype: torch.dtype | None = None) -> MRGenPipeline:
        for m in (self.vae, self.unet, self.controlnet):
            if m is not None:  # a same-dtype cast would only make diffusers warn about keep-in-fp32 modules
                m.to(device=device) if dtype in (None, m.dtype) else m.to(device=device, dtype=dtype)
        self.text_encoder.to(device=device)  # the BERT stays float32 (its hidden states are cast when used)
        return self

    def encode_masks(self, label_maps: np.ndarray) -> torch.Tensor:
        """(B, N, N) uint8 label maps (values of `config.labels`) -> (B, C, N, N) float32 in [-1, 1]."""
        return encode_masks(label_maps, self.config.labels, self.config.mask_encoding,
                            self.config.label_weights or None)

    def encode_prompt(self, prompts: list[str]) -> torch.Tensor:
        """B prompts -> (B, L, D) hidden states in the UNet's dtype."""
        return self.text_encoder(prompts).to(self.device, self.dtype)

    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        mask: torch.Tensor,
        num_inference_steps: int = 50,
        guidance_scale: float = 7.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        scheduler: str = "ddim",
        controlnet_conditioning_scale: float = 1.0,
        latents: torch.Tensor | None = None,
        image: torch.Tensor | None = None,
        strength: float = 1.0,
        translate: str = "sdedit",
        source_prompt: str | list[str] = "",
    ) -> MRGenPipelineOutput:
        """Generate B images.

        prompt: one string (used for every mask) or B strings. mask: (B, C, N, N) in [-1, 1] from `encode_masks`.
        generator: one per sample (sample b then depends only on its own seed and the batch composition), one for
        the batch, or None. Returns images (B, 1, N, N) float32 in [-1, 1] and the final latents.

        Translate mode (`image` (B, 1, N, N) in [-1, 1], the source images whose labels `mask` encodes): only the
        last `strength` of the schedule runs (0 = the source image unchanged, 1 = from pure noise), starting from
        the source's latent instead of noise. `translate="sdedit"` noises that latent to the start timestep
        (SDEdit); `"inversion"` reaches it by DDIM inversion under `source_prompt` and the mask, then denoises
        with DDIM under `prompt` (DDIB), which keeps more of the source's structure.
        """
        # 1. check inputs
        n = self.config.resolution
        if mask.ndim != 4 or mask.shape[-2:] != (n, n):
            raise MRGenError(f"mask shape {tuple(mask.shape)} is not (B, C, {n}, {n})", "mask",
                             "encode label maps at the generator's resolution with pipe.encode_masks")
        batch = mask.shape[0]
        prompts = [prompt] * batch if isinstance(prompt, str) else list(prompt)
        if len(prompts) != batch:
            raise MRGenError(f"{len(prompts)} prompts for {batch} masks", "prompt", "pass one prompt or one per mask")
        if isinstance(generator, list) and len(generator) != batch:
            raise MRGenError(f"{len(generator)} generators for {batch} masks", "generator", "pass one per mask")
        do_cfg = guidance_scale > 1.0

        # 2. text conditions (unconditional = empty prompt, as in training's prompt dropout)
        cond = self.encode_prompt(prompts)
        if do_cfg:
            cond = torch.cat([self.encode_prompt([""] * batch), cond])

        if image is not None:
            if tuple(image.shape) != (batch, 1, n, n):
                raise MRGenError(f"source image shape {tuple(image.shape)} is not ({batch}, 1, {n}, {n})", "image",
                                 "pass one normalised source image per mask at the generator's resolution")
            if not 0.0 <= strength <= 1.0 or translate not in ("sdedit", "inversion"):
                raise MRGenError(f"bad translate settings (strength {strength}, method {translate!r})", "--strength",
                                 "strength in [0, 1]; method sdedit or inversion")

        # 3. initial latents: noise drawn on CPU per sample (results do not depend on the device), or the source's
        f = 2 ** (len(self.vae.config.block_out_channels) - 1)
        shape = (self.unet.config.in_channels, n // f, n // f)
        gens = generator if isinstance(generator, list) else [generator] * batch
        if latents is None and image is None:
            latents = torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in gens])
        sched = make_scheduler(self.scheduler_config, "ddim" if image is not None and translate == "inversion"
                               else scheduler)
        sched.set_timesteps(num_inference_steps, device=self.device)
        timesteps = sched.timesteps
        control = mask.to(self.device, self.dtype)
        if image is not None:
            steps = int(round(num_inference_steps * strength))
            if steps == 0:  # nothing to change: the source itself, not its VAE reconstruction
                return MRGenPipelineOutput(images=image.float().cpu(), latents=torch.zeros((batch, *shape)))
            start = len(timesteps) - steps
            timesteps = timesteps[start:]
            if hasattr(sched, "set_begin_index"):
                sched.set_begin_index(start)
            source = self.vae.encode(image.to(self.device, self.dtype)).latent_dist.mean
            source = source * self.vae.config.scaling_factor
            if translate == "sdedit":
                noise = torch.stack([torch.randn(shape, generator=g, dtype=torch.float32) for g in gens])
                latents = sched.add_noise(source, noise.to(self.device, self.dtype),
                                          timesteps[:1].repeat(batch))
            else:
                sources = [source_prompt] * batch if isinstance(source_prompt, str) else list(source_prompt)
                latents = self._invert(source, self.encode_prompt(sources), control, num_inference_steps, steps,
                                       controlnet_conditioning_scale)
        else:
            latents = latents.to(self.device, self.dtype) * sched.init_noise_sigma
        latents = latents.to(self.device, self.dtype)
        if do_cfg:
            control = torch.cat([control, control])

        # 4. denoising loop
        for t in timesteps:
            model_in = torch.cat([latents, latents]) if do_cfg else latents
            model_in = sched.scale_model_input(model_in, t)
            down, mid = None, None
            if self.controlnet is not None:  # None: stage-1 (text only) sampling, used for validation images
                down, mid = self.controlnet(model_in, t, encoder_hidden_states=cond, controlnet_cond=control,
                                            conditioning_scale=controlnet_conditioning_scale, return_dict=False)
            noise = self.unet(model_in, t, encoder_hidden_states=cond, down_block_additional_residuals=down,
                              mid_block_additional_residual=mid).sample
            if do_cfg:
                uncond, text = noise.chunk(2)
                noise = uncond + guidance_scale * (text - uncond)
            latents = sched.step(noise, t, latents).prev_sample

        # 5. decode
        images = self.vae.decode(latents / self.vae.config.scaling_factor).sample.clamp(-1, 1)
        return MRGenPipelineOutput(images=images.float().cpu(), latents=latents.float().cpu())


    def _invert(self, latents: torch.Tensor, cond: torch.Tensor, control: torch.Tensor, num_inference_steps: int,
                steps: int, conditioning_scale: float) -> torch.Tensor:
        """DDIM inversion (no guidance) of clean latents (B, C, n, n) through the first `steps` of a
        `num_inference_steps` schedule, under text `cond` (B, L, D) and mask `control` (B, C, N, N)."""
        from diffusers import DDIMInverseScheduler

        inverse = DDIMInverseScheduler.from_config(self.scheduler_config)
        inverse.set_timesteps(num_inference_steps, device=self.device)
        for t in inverse.timesteps[:steps]:
            down, mid = None, None
            if self.controlnet is not None:
                down, mid = self.controlnet(latents, t, encoder_hidden_states=cond, controlnet_cond=control,
                                            conditioning_scale=conditioning_scale, return_dict=False)
            noise = self.unet(latents, t, encoder_hidden_states=cond, down_block_additional_residuals=down,
                              mid_block_additional_residual=mid).sample
            latents = inverse.step(noise, t, latents).prev_sample
        return latents


def check_consistency(vae, unet, controlnet, text: TextEncoder, config: GeneratorConfig, where) -> None:
    """One-line errors when parts of a generator do not fit together."""
    from mrgen_nnunet.generator.masks import mask_channels

    problems = []
    if vae.config.latent_channels != unet.config.in_channels:
        problems.append(f"VAE latent channels {vae.config.latent_channels} ≠ UNet in_channels {unet.config.in_channels}")
    if unet.config.cross_attention_dim != text.hidden_size:
        problems.append(f"UNet cross_attention_dim {unet.config.cross_attention_dim} ≠ text width {text.hidden_size}")
    if controlnet.config.in_channels != unet.config.in_channels:
        problems.append("ControlNet in_channels ≠ UNet in_channels")
    want = mask_channels(config.mask_encoding, config.labels)
    if controlnet.config.conditioning_channels != want:
        problems.append(f"ControlNet takes {controlnet.config.conditioning_channels} mask channels, "
                        f"config ({config.mask_encoding}, {len(config.labels) - 1} organs) gives {want}")
    if problems:
        raise MRGenError("generator parts do not match: " + "; ".join(problems), where,
                         "use parts trained together (same preset and mask encoding)")
