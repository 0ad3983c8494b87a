"""Training stages of the generator, all writing into one generator folder `out_dir`:

1. `train_autoencoder` -> `vae/`            (MSE + 1e-4·KL on slices in [-1, 1])
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
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mrgen_nnunet.data.io import write_text_atomic
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.generator.dataset import SliceSet, load_slice_set, resolve_target
from mrgen_nnunet.generator.folder import CONFIG_FILE, GeneratorConfig, load_model, read_config, replace_dir
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
from mrgen_nnunet.progress import StepProgress

STAGES = ("autoencoder", "text", "mask")


@dataclass
class TrainOptions:
    """Options shared by the stages (CLI flags / config file keys of the same names)."""

    steps: int = 1000  # optimizer steps
    batch_size: int = 4  # per micro-batch
    lr: float | None = None  # None: the preset's rate for the stage
    grad_accum: int = 1  # micro-batches per optimizer step (accelerator.accumulate)
    mixed_precision: str = "no"  # no | fp16 | bf16
    seed: int = 0
    checkpoint_every: int = 0  # 0: no intermediate checkpoints
    validate_every: int = 0  # 0: one validation grid at the end only
    resume: bool = False
    gradient_checkpointing: bool = False
    prompt_dropout: float = 0.1  # stages 1-2: prompt -> "" with this probability (CFG)
    target_mix: float = 0.5  # stage 2: fraction of each batch taken from unlabeled target slices
    mask_encoding: str = "weighted"  # stage 2: weighted | onehot
    cpu: bool = False  # force CPU even when a GPU is present
    quiet: bool = False  # no progress bar


def _accelerator(out_dir: Path, opts: TrainOptions):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    if opts.mixed_precision not in ("no", "fp16", "bf16"):
        raise MRGenError(f"unknown mixed precision {opts.mixed_precision!r}", "--mixed-precision", "use no|fp16|bf16")
    return Accelerator(mixed_precision=opts.mixed_precision, gradient_accumulation_steps=opts.grad_accum,
                       cpu=opts.cpu, log_with="tensorboard",
                       project_config=ProjectConfiguration(project_dir=str(out_dir), logging_dir=str(out_dir / "logs")))


def _save_model(model, folder: Path) -> None:
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp), safe_serialization=True)
    replace_dir(tmp, folder)


def _latest_checkpoint(out_dir: Path, stage: str) -> Path | None:
    root = out_dir / "checkpoints" / stage
    found = [p for p in root.glob("step_*") if p.name[5:].isdigit()] if root.is_dir() else []  # not step_N.tmp
    found.sort(key=lambda p: int(p.name[5:]))
    return found[-1] if found else None


def _run_state(stage: str, preset: Preset, index_path) -> dict:
    return {"stage": stage, "preset": preset.name, "resolution": preset.resolution,
            "index": str(Path(index_path).resolve())}


def _resume(out_dir: Path, stage: str, state: dict, model, optimizer) -> int:
    """Load the newest checkpoint of this stage; returns the step to continue from (0 if none)."""
    ckpt = _latest_checkpoint(out_dir, stage)
    if ckpt is None:
        raise MRGenError(f"no {stage} checkpoint to resume from", out_dir / "checkpoints" / stage,
                         "drop --resume or set --checkpoint-every on the first run")
    saved = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    for key in ("stage", "preset", "resolution"):
        if saved.get(key) != state[key]:
            raise MRGenError(f"--resume from an unrelated run ({key} {saved.get(key)!r} ≠ {state[key]!r})", ckpt,
                             "resume with the same stage/preset/resolution, or use a fresh --out")
    from safetensors.torch import load_file

    from mrgen_nnunet.weights import load_torch_file

    files = sorted((ckpt / "model").glob("*.safetensors"))
    model.load_state_dict(load_file(str(files[0])))
    optimizer.load_state_dict(load_torch_file(ckpt / "optimizer.pt"))
    return int(saved["step"])


def _checkpoint(out_dir: Path, stage: str, state: dict, step: int, model, optimizer) -> None:
    folder = out_dir / "checkpoints" / stage / f"step_{step}"
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp / "model"), safe_serialization=True)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(dict(state, step=step), indent=2), encoding="utf-8")
    replace_dir(tmp, folder)


def save_grid(images: torch.Tensor, path: Path, nrow: int = 4) -> Path:
    """(B, 1, N, N) in [-1, 1] -> an 8-bit PNG grid (row-major, `nrow` per row), written atomically."""
    from PIL import Image

    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()[:, 0]
    b, n, _ = x.shape
    rows = (b + nrow - 1) // nrow
    grid = np.zeros((rows * n, min(b, nrow) * n), dtype=np.uint8)
    for i in range(b):
        r, c = divmod(i, nrow)
        grid[r * n:(r + 1) * n, c * n:(c + 1) * n] = x[i]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    Image.fromarray(grid).save(tmp)
    os.replace(tmp, path)
    return path


def save_loss_plot(csv: Path, path: Path, window: int = 50) -> Path:
    """PNG of a `step,loss` CSV: the raw loss and its running mean over `window` steps (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [ln.split(",") for ln in csv.read_text(encoding="utf-8").splitlines()[1:] if ln]
    steps, loss = np.array([int(r[0]) for r in rows]), np.array([float(r[1]) for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, loss, lw=0.5, alpha=0.4, label="loss")
    if len(loss) >= window:
        ax.plot(steps[window - 1:], np.convolve(loss, np.ones(window) / window, "valid"), label=f"mean of {window}")
    ax.set(xlabel="step", ylabel="loss", yscale="log", title=csv.stem)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def _loop(stage: str, out_dir: Path, preset: Preset, index_path, model, loss_fn, validate, opts: TrainOptions):
    """The shared loop: AdamW on `model`'s trainable parameters, `loss_fn(rng) -> scalar` per micro-batch."""
    accelerator = _accelerator(out_dir, opts)
    lr = opts.lr if opts.lr is not None else preset.lr[stage]
    if opts.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-2)
    state = _run_state(stage, preset, index_path)
    start = _resume(out_dir, stage, state, model, optimizer) if opts.resume else 0
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.init_trackers(f"{stage}", config={k: v for k, v in asdict(opts).items() if v is not None})
    rng = np.random.default_rng(opts.seed + start)
    torch.manual_seed(opts.seed + start)
    csv = out_dir / "logs" / f"{stage}_loss.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    lines = csv.read_text(encoding="utf-8").splitlines() if (opts.resume and csv.is_file()) else ["step,loss"]
    lines = [ln for ln in lines if ln == "step,loss" or int(ln.split(",")[0]) <= start]
    model.train()
    with StepProgress(f"train {stage}", opts.steps, start, quiet=opts.quiet) as bar:
        for step in range(start + 1, opts.steps + 1):
            total = 0.0
            for _ in range(opts.grad_accum):
                with accelerator.accumulate(model):
                    with accelerator.autocast():
                        loss = loss_fn(accelerator.unwrap_model(model), rng, accelerator.device)
                    if not torch.isfinite(loss):
                        raise MRGenError(f"{stage} loss became {loss.item()} at step {step}", "--lr",
                                         "lower the learning rate or use --mixed-precision no")
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    optimizer.zero_grad()
                total += loss.item() / opts.grad_accum
            accelerator.log({f"{stage}/loss": total}, step=step)
            lines.append(f"{step},{total:.6f}")
            bar.update(step, total)
            if opts.checkpoint_every and step % opts.checkpoint_every == 0 and step < opts.steps:
                _checkpoint(out_dir, stage, state, step, accelerator.unwrap_model(model), optimizer)
                write_text_atomic("\n".join(lines) + "\n", csv)  # the loss log survives a kill after this checkpoint
            if opts.validate_every and step % opts.validate_every == 0 and step < opts.steps:
                model.eval()
                save_grid(validate(accelerator.unwrap_model(model)), out_dir / "validation" / f"{stage}_step{step}.png")
                model.train()
    accelerator.end_training()
    write_text_atomic("\n".join(lines) + "\n", csv)
    save_loss_plot(csv, csv.with_suffix(".png"))
    model = accelerator.unwrap_model(model).eval()
    save_grid(validate(model), out_dir / "validation" / f"{stage}_step{opts.steps}.png")
    return model


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

    def loss_fn(model, rng, device):
        x = _batch(data, rng.integers(0, len(data), opts.batch_size), device)
        posterior = model.encode(x).latent_dist
        recon = model.decode(posterior.sample()).sample
        return F.mse_loss(recon.float(), x) + 1e-4 * posterior.kl().mean()

    @torch.no_grad()
    def validate(model):
        x = _batch(data, fixed, model.device)
        return torch.cat([x, model(x).sample.clamp(-1, 1)]).cpu()

    vae = _loop("autoencoder", out_dir, p, index_path, vae, loss_fn, validate, opts)
    _save_model(vae, out_dir / "vae")
    _write_config(out_dir, config)
    return out_dir / "vae"


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
    loss_fn = _diffusion_loss(data, np.arange(len(data)), None, vae, text, sched, None, opts)

    def validate(model):
        return _sample_grid(vae, model, None, text, sched, data, np.arange(min(4, len(data))), None)

    unet = _loop("text", out_dir, p, index_path, unet, loss_fn, validate, opts)
    _save_model(unet, out_dir / "unet")
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

    loss_fn = _diffusion_loss(data, source_pool, target_pool if opts.target_mix > 0 else None, vae, text, sched,
                              encode, opts)
    loss_fn.frozen_unet["unet"] = unet
    val_idx = source_pool[np.linspace(0, len(source_pool) - 1, min(4, len(source_pool))).astype(int)]
    val = SliceSet(data.images, data.label_maps, data.has_label,
                   [_retarget(data, i, target) for i in range(len(data))], data.modalities, data.labels, data.records)

    def validate(model):
        return _sample_grid(vae, unet, model, text, sched, val, val_idx, encode)

    controlnet = _loop("mask", out_dir, p, index_path, controlnet, loss_fn, validate, opts)
    _save_model(controlnet, out_dir / "controlnet")
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
