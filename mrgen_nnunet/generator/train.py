"""Training stages of the generator, all writing into one generator folder `out_dir`:

1. `train_autoencoder` -> `vae/`            (MSE + the preset's KL weight · KL on slices in [-1, 1])
2. `train_text`        -> `unet/ text_encoder/ scheduler/`   (ε-prediction DDPM, prompt dropout for CFG)
3. `train_mask`        -> `controlnet/ mrgen_generator.json` (ControlNet from the UNet; UNet/VAE/text frozen;
   source slices with masks mixed with unlabeled target slices with an all -1 mask and the target prompt)

`train_generator` runs all three. One code path for every dataset pair; accelerate handles device, mixed
precision and gradient accumulation. Checkpoints: `out_dir/checkpoints/<stage>/step_<N>/`; `resume=True`
continues from the newest one. Losses go to tensorboard (`out_dir/logs`) and `out_dir/logs/<stage>_loss.csv`;
validation grids to `out_dir/validation/<stage>_step<N>.png`; a loss plot beside the CSV.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mrgen_nnunet.data.io import write_text_atomic
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.generator.dataset import SliceSet, load_slice_set, resolve_target
from mrgen_nnunet.generator.folder import CONFIG_FILE, GeneratorConfig, load_model, read_config
from mrgen_nnunet.generator.holdout import autoencoder_score, diffusion_score, holdout_split
from mrgen_nnunet.generator.masks import default_label_weights, encode_masks, mask_channels
from mrgen_nnunet.generator.presets import (
    Preset,
    build_controlnet,
    build_train_scheduler,
    build_unet,
    build_vae,
    get_preset,
)
from mrgen_nnunet.generator.text import (
    SPEC_FILE,
    build_tiny_text_encoder,
    load_text_encoder,
    save_text_encoder,
)
from mrgen_nnunet.generator.training_loop import TrainOptions, run_loop, save_model

STAGES = ("autoencoder", "text", "mask")
__all__ = ["STAGES", "TrainOptions", "train_autoencoder", "train_generator", "train_mask", "train_text"]


def _loop(stage: str, out_dir: Path, preset: Preset, index_path, model, loss_fn, validate, opts: TrainOptions,
          score=None):
    """`run_loop` at the preset's learning rate for `stage`; returns the trained model (eval mode)."""
    lr = opts.lr if opts.lr is not None else preset.lr[stage]
    state = {"stage": stage, "preset": preset.name, "resolution": preset.resolution,
             "index": str(Path(index_path).resolve())}
    model, _ = run_loop(stage, out_dir, state, lr, model, loss_fn, validate, opts, score)
    return model


def _split(data: SliceSet, opts: TrainOptions, index_path) -> tuple[np.ndarray, np.ndarray]:
    """(training slices, held-out slices): everything and nothing unless --keep best holds patients out."""
    if opts.keep != "best":
        return np.arange(len(data)), np.array([], dtype=int)
    return holdout_split(data, opts.holdout, opts.seed, index_path)


def _batch(data: SliceSet, idx: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(data.images[idx]).unsqueeze(1).to(device)


def _write_config(out_dir: Path, config: GeneratorConfig) -> None:
    write_text_atomic(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n", out_dir / CONFIG_FILE)


def _base_config(out_dir: Path, preset: Preset, data: SliceSet) -> GeneratorConfig:
    if (out_dir / CONFIG_FILE).is_file():
        config = read_config(out_dir)
        if config.preset != preset.name or config.resolution != preset.resolution:
            raise MRGenError(f"generator folder holds preset {config.preset!r} at {config.resolution} px, "
                             f"not {preset.name!r} at {preset.resolution} px", out_dir,
                             "use the same --preset/--resolution for every stage, or a fresh --out")
        return config
    modalities = {}
    for rec in data.records:
        modalities[rec.modality] = {"attributes": rec.attributes, "region": rec.region}
    return GeneratorConfig(preset.resolution, data.labels, "weighted", default_label_weights(data.labels),
                           text_encoder=dict(preset.text_encoder), modalities=modalities, preset=preset.name)


def train_autoencoder(index_path, out_dir, preset: str = "tiny", resolution: int | None = None,
                      options: TrainOptions | None = None) -> Path:
    """Stage 0: train `AutoencoderKL` from scratch on every slice of the index -> `out_dir/vae/`."""
    opts, p, out_dir = options or TrainOptions(), get_preset(preset, resolution), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_slice_set(index_path, p.resolution, opts.quiet)
    config = _base_config(out_dir, p, data)
    torch.manual_seed(opts.seed)
    vae = build_vae(p)
    fixed = np.arange(min(8, len(data)))
    pool, held = _split(data, opts, index_path)

    def loss_fn(model, rng, device):
        x = _batch(data, pool[rng.integers(0, len(pool), opts.batch_size)], device)
        posterior = model.encode(x).latent_dist
        recon = model.decode(posterior.sample()).sample
        return F.mse_loss(recon.float(), x) + p.kl_weight * posterior.kl().mean()

    @torch.no_grad()
    def validate(model):
        x = _batch(data, fixed, model.device)
        return torch.cat([x, model(x).sample.clamp(-1, 1)]).cpu()

    score = autoencoder_score(data, held) if len(held) else None
    vae = _loop("autoencoder", out_dir, p, index_path, vae, loss_fn, validate, opts, score)
    fit_latent_scale(vae, data.images[pool])
    save_model(vae, out_dir / "vae")
    _write_config(out_dir, config)
    return out_dir / "vae"


@torch.no_grad()
def fit_latent_scale(vae, images: np.ndarray, max_slices: int = 256, batch_size: int = 16) -> float:
    """Set `vae.config.scaling_factor` to 1 / std of the latents of (up to `max_slices` evenly spaced) training
    slices (B, N, N) in [-1, 1], as Stable Diffusion chose its 0.18215: the diffusion stages then see latents of
    unit variance whatever the KL weight left them at. Returns the factor."""
    idx = np.linspace(0, len(images) - 1, min(max_slices, len(images))).astype(int)
    device = next(vae.parameters()).device
    latents = [vae.encode(torch.from_numpy(images[idx[i:i + batch_size]]).unsqueeze(1).to(device, vae.dtype))
               .latent_dist.sample() for i in range(0, len(idx), batch_size)]
    factor = float(1.0 / torch.cat(latents).float().std().clamp_min(1e-6))
    vae.register_to_config(scaling_factor=factor)
    return factor


def _frozen_text(out_dir: Path, config: GeneratorConfig):
    text_dir = out_dir / "text_encoder"
    if (text_dir / SPEC_FILE).is_file():
        return load_text_encoder(json.loads((text_dir / SPEC_FILE).read_text(encoding="utf-8")), text_dir)
    spec = config.text_encoder
    return build_tiny_text_encoder(spec) if spec["kind"] == "tiny" else load_text_encoder(spec)


def train_text(index_path, out_dir, preset: str = "tiny", resolution: int | None = None,
               options: TrainOptions | None = None) -> Path:
    """Stage 1: text-conditioned latent diffusion UNet from scratch (VAE and text encoder frozen) -> `unet/`."""
    from diffusers import AutoencoderKL

    opts, p, out_dir = options or TrainOptions(), get_preset(preset, resolution), Path(out_dir)
    data = load_slice_set(index_path, p.resolution, opts.quiet)
    config = _base_config(out_dir, p, data)
    vae = load_model(AutoencoderKL, out_dir / "vae").eval().requires_grad_(False)
    text = _frozen_text(out_dir, config)
    torch.manual_seed(opts.seed)
    unet = build_unet(p)
    if unet.config.cross_attention_dim != text.hidden_size:
        raise MRGenError(f"text encoder width {text.hidden_size} ≠ preset cross-attention {unet.config.cross_attention_dim}",
                         out_dir / "text_encoder", "use the text encoder of the preset")
    sched = build_train_scheduler(p)
    pool, held = _split(data, opts, index_path)
    loss_fn = _diffusion_loss(data, pool, None, vae, text, sched, None, opts)

    def validate(model):
        return _sample_grid(vae, model, None, text, sched, data, np.arange(min(4, len(data))), None)

    score = diffusion_score(data, held, vae, text, sched) if len(held) else None
    unet = _loop("text", out_dir, p, index_path, unet, loss_fn, validate, opts, score)
    save_model(unet, out_dir / "unet")
    save_text_encoder(text, out_dir / "text_encoder")
    sched.save_config(str(out_dir / "scheduler"))
    _write_config(out_dir, config)
    return out_dir / "unet"


def _diffusion_loss(data: SliceSet, pool: np.ndarray, target_pool, vae, text, sched, encode, opts: TrainOptions):
    """ε-prediction MSE. `encode` (label maps -> (B,C,N,N)) set: stage 2, the trained model is the ControlNet and
    `target_pool` slices get an all -1 mask; None: stage 1, the trained model is the UNet."""
    frozen_unet = {}

    def loss_fn(model, rng, device):
        if target_pool is not None and len(target_pool):
            n_target = int(rng.binomial(opts.batch_size, opts.target_mix))
            idx = np.concatenate([rng.choice(pool, opts.batch_size - n_target), rng.choice(target_pool, n_target)])
            is_target = np.arange(opts.batch_size) >= opts.batch_size - n_target
        else:
            idx, is_target = rng.choice(pool, opts.batch_size), np.zeros(opts.batch_size, bool)
        x = _batch(data, idx, device)
        prompts = ["" if rng.random() < opts.prompt_dropout else data.prompts[i] for i in idx]
        vae.to(device)
        with torch.no_grad():
            latents = vae.encode(x.to(vae.dtype)).latent_dist.sample() * vae.config.scaling_factor
            cond = text(prompts).to(device)
        noise = torch.randn_like(latents)
        t = torch.randint(0, sched.config.num_train_timesteps, (latents.shape[0],), device=device)
        noisy = sched.add_noise(latents, noise, t)
        if encode is None:
            pred = model(noisy, t, encoder_hidden_states=cond).sample
        else:
            maps = data.label_maps[idx].copy()
            maps[is_target] = 0
            control = encode(maps).to(device)
            down, mid = model(noisy, t, encoder_hidden_states=cond, controlnet_cond=control, return_dict=False)
            unet = frozen_unet["unet"].to(device)
            pred = unet(noisy, t, encoder_hidden_states=cond, down_block_additional_residuals=down,
                        mid_block_additional_residual=mid).sample
        return F.mse_loss(pred.float(), noise.float())

    loss_fn.frozen_unet = frozen_unet
    return loss_fn


@torch.no_grad()
def _sample_grid(vae, unet, controlnet, text, sched, data: SliceSet, idx, encode) -> torch.Tensor:
    from mrgen_nnunet.generator.pipeline import MRGenPipeline

    config = GeneratorConfig(data.images.shape[-1], data.labels)
    pipe = MRGenPipeline(vae, unet, controlnet, text, dict(sched.config), config)
    mask = encode(data.label_maps[idx]) if encode is not None else torch.zeros(len(idx), 1, *data.images.shape[1:])
    gens = [torch.Generator().manual_seed(i) for i in range(len(idx))]
    out = pipe([data.prompts[i] for i in idx], mask, num_inference_steps=10, guidance_scale=3.0, generator=gens)
    return torch.cat([_batch(data, idx, "cpu"), out.images])


def train_mask(index_path, out_dir, target_modality: str, preset: str = "tiny", resolution: int | None = None,
               options: TrainOptions | None = None) -> Path:
    """Stage 2: ControlNet from the stage-1 UNet (only it trains) -> `controlnet/` + `mrgen_generator.json`.

    Batches mix labelled non-target slices (their masks, their prompts) with target-modality slices (all -1 mask,
    target prompt); `options.target_mix` is the expected target fraction.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel

    opts, p, out_dir = options or TrainOptions(), get_preset(preset, resolution), Path(out_dir)
    data = load_slice_set(index_path, p.resolution, opts.quiet)
    config = _base_config(out_dir, p, data)
    target = resolve_target(target_modality, data.modalities)
    is_target = np.array([m == target for m in data.modalities])
    source_pool = np.flatnonzero(data.has_label & ~is_target)
    target_pool = np.flatnonzero(is_target)
    if not len(source_pool):
        raise MRGenError("no labelled source-modality slices in the index", index_path,
                         "index labelled slices of the source sequence")
    if opts.mask_encoding not in ("weighted", "onehot"):
        raise MRGenError(f"unknown mask encoding {opts.mask_encoding!r}", "--mask-encoding", "use weighted|onehot")
    config.mask_encoding = opts.mask_encoding
    config.labels = data.labels
    config.label_weights = default_label_weights(data.labels) if not config.label_weights else config.label_weights
    config.target_modality = target
    config.source_modality = ", ".join(sorted({data.modalities[i] for i in source_pool}))
    vae = load_model(AutoencoderKL, out_dir / "vae").eval().requires_grad_(False)
    unet = load_model(UNet2DConditionModel, out_dir / "unet").eval().requires_grad_(False)
    text = _frozen_text(out_dir, config)
    sched = build_train_scheduler(p)
    controlnet = build_controlnet(unet, p, mask_channels(config.mask_encoding, data.labels))

    def encode(maps):
        return encode_masks(maps, config.labels, config.mask_encoding, config.label_weights)

    pool, held = _split(data, opts, index_path)
    held_source = np.intersect1d(held, source_pool)
    source_pool, target_pool = np.intersect1d(source_pool, pool), np.intersect1d(target_pool, pool)
    if len(held) and not (len(held_source) and len(source_pool)):
        raise MRGenError("the held-out or the training patients have no labelled source slices", index_path,
                         "use another --seed or --holdout")
    loss_fn = _diffusion_loss(data, source_pool, target_pool if opts.target_mix > 0 else None, vae, text, sched,
                              encode, opts)
    loss_fn.frozen_unet["unet"] = unet
    val_idx = source_pool[np.linspace(0, len(source_pool) - 1, min(4, len(source_pool))).astype(int)]
    val = SliceSet(data.images, data.label_maps, data.has_label,
                   [_retarget(data, i, target) for i in range(len(data))], data.modalities, data.labels, data.records)

    def validate(model):
        return _sample_grid(vae, unet, model, text, sched, val, val_idx, encode)

    score = diffusion_score(data, held_source, vae, text, sched, encode, unet) if len(held) else None
    controlnet = _loop("mask", out_dir, p, index_path, controlnet, loss_fn, validate, opts, score)
    save_model(controlnet, out_dir / "controlnet")
    _write_config(out_dir, config)
    return out_dir / "controlnet"


def _retarget(data: SliceSet, i: int, target: str) -> str:
    """Prompt of slice i rewritten for the target modality (same organs): what synthesis asks for."""
    from mrgen_nnunet.data.prompts import build_prompt

    rec = next((r for r in data.records if r.modality == target), None)
    src = data.records[i]
    if rec is None:
        return data.prompts[i]
    return build_prompt(target, rec.attributes, rec.region, src.organs)


def train_generator(index_path, out_dir, preset: str = "tiny", target_modality: str = "", steps: int = 200,
                    resolution: int | None = None, options: TrainOptions | None = None) -> Path:
    """All three stages, `steps` optimizer steps each -> a complete generator folder at `out_dir`."""
    if not target_modality:
        raise MRGenError("no target modality given", "target_modality", "pass e.g. target_modality='LGE'")
    opts = options or TrainOptions()
    opts = TrainOptions(**dict(asdict(opts), steps=steps))
    train_autoencoder(index_path, out_dir, preset, resolution, opts)
    train_text(index_path, out_dir, preset, resolution, opts)
    train_mask(index_path, out_dir, target_modality, preset, resolution, opts)
    return Path(out_dir)
