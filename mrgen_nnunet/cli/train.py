"""`mrgen-nnunet train autoencoder | text | mask | all`: parse options (config file + flags) and call the stage."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import tomllib
import typer

from mrgen_nnunet.errors import MRGenError

app = typer.Typer(help="Train the generator: autoencoder (VAE), text (stage 1 UNet), mask (stage 2 ControlNet).",
                  no_args_is_help=True)

INDEX = typer.Option(..., "--index", help="Generator index (JSONL of slice records).")
OUT = typer.Option(..., "--out", help="Generator folder; every stage reads and writes here.")
PRESET = typer.Option("tiny", "--preset", help="mrgen | small | cpu | tiny.")
RESOLUTION = typer.Option(None, "--resolution", help="Model resolution (default: the preset's).")
CONFIG = typer.Option(None, "--config", help="TOML or YAML file with option values (flags override it).")
STEPS = typer.Option(None, "--steps")
BATCH = typer.Option(None, "--batch-size")
LR = typer.Option(None, "--lr")
ACCUM = typer.Option(None, "--grad-accum")
MP = typer.Option(None, "--mixed-precision", help="no | fp16 | bf16")
SEED = typer.Option(None, "--seed")
CKPT = typer.Option(None, "--checkpoint-every")
VAL = typer.Option(None, "--validate-every")
RESUME = typer.Option(False, "--resume", help="Continue from the newest checkpoint of this stage.")
GC = typer.Option(False, "--gradient-checkpointing")
CPU = typer.Option(False, "--cpu", help="Train on CPU even when a GPU is present.")
MINUTES = typer.Option(None, "--minutes", help="Wall-time budget: stop after this many minutes even before --steps.")
KEEP = typer.Option(None, "--keep", help="last | best: save the last step's weights, or the checkpoint with the "
                    "lowest loss on held-out patients (needs --checkpoint-every).")
HOLDOUT = typer.Option(None, "--holdout", help="With --keep best: fraction of patients held out (default 0.1).")
EMA = typer.Option(None, "--ema-decay",
                   help="EMA of the weights (saved and sampled from); default 0.999 for text/mask, 0 (off) for the autoencoder.")


def _options(config: Path | None, **flags):
    from mrgen_nnunet.generator.train import TrainOptions

    values: dict = {}
    if config is not None:
        if not config.is_file():
            raise MRGenError("config file not found", config, "pass an existing TOML or YAML file")
        try:
            if config.suffix in (".yaml", ".yml"):
                import yaml

                values = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
            else:
                values = tomllib.loads(config.read_text(encoding="utf-8"))
        except Exception as exc:  # parse errors of either format: one line
            raise MRGenError(f"cannot parse config: {exc}", config, "fix the TOML/YAML syntax") from None
        known = {f.name for f in fields(TrainOptions)}
        unknown = sorted(set(values) - known - {"preset", "resolution", "target"})
        if unknown:
            raise MRGenError(f"unknown config key(s) {', '.join(unknown)}", config, f"known: {', '.join(sorted(known))}")
    given = {k: v for k, v in flags.items() if v is not None and v is not False}
    values.update(given)
    _check(values, lambda key: f"--{key.replace('_', '-')}" if key in given else f"{key} ({config})")
    extra = {k: values.pop(k) for k in ("preset", "resolution", "target") if k in values}
    return TrainOptions(**values), extra


def _check(values: dict, where) -> None:
    """Ranges of the option values, from flags or the config file; `where(key)` names the flag or config key."""
    from mrgen_nnunet.validation import at_least, between, one_of

    for key, minimum in (("steps", 1), ("batch_size", 1), ("grad_accum", 1), ("checkpoint_every", 0),
                         ("validate_every", 0), ("resolution", 8), ("lr", 1e-12), ("minutes", 0.0)):
        at_least(values.get(key), minimum, where(key))
    between(values.get("ema_decay"), 0.0, 0.99999, where("ema_decay"))
    for key in ("prompt_dropout", "target_mix"):
        between(values.get(key), 0.0, 1.0, where(key))
    one_of(values.get("mixed_precision"), ("no", "fp16", "bf16"), where("mixed_precision"))
    one_of(values.get("mask_encoding"), ("weighted", "onehot"), where("mask_encoding"))
    one_of(values.get("keep"), ("last", "best"), where("keep"))
    between(values.get("holdout"), 0.01, 0.9, where("holdout"))


def _common(config, steps, batch_size, lr, grad_accum, mixed_precision, seed, checkpoint_every, validate_every,
            resume, gradient_checkpointing, cpu, minutes, ema_decay, keep, holdout, **more):
    return _options(config, steps=steps, batch_size=batch_size, lr=lr, grad_accum=grad_accum,
                    mixed_precision=mixed_precision, seed=seed, checkpoint_every=checkpoint_every,
                    validate_every=validate_every, resume=resume, gradient_checkpointing=gradient_checkpointing,
                    cpu=cpu, minutes=minutes, ema_decay=ema_decay, keep=keep, holdout=holdout, **more)


@app.command("autoencoder")
def autoencoder(index: Path = INDEX, out: Path = OUT, preset: str = PRESET, resolution: int = RESOLUTION,
                config: Path = CONFIG, steps: int = STEPS, batch_size: int = BATCH, lr: float = LR,
                grad_accum: int = ACCUM, mixed_precision: str = MP, seed: int = SEED, checkpoint_every: int = CKPT,
                validate_every: int = VAL, resume: bool = RESUME, gradient_checkpointing: bool = GC,
                cpu: bool = CPU, minutes: float = MINUTES, ema_decay: float = EMA, keep: str = KEEP,
                holdout: float = HOLDOUT) -> None:
    """Train the VAE (MSE + the preset's KL weight: 1e-4, cpu 1e-6) -> OUT/vae."""
    from mrgen_nnunet.generator.train import train_autoencoder

    opts, extra = _common(config, steps, batch_size, lr, grad_accum, mixed_precision, seed, checkpoint_every,
                          validate_every, resume, gradient_checkpointing, cpu, minutes, ema_decay, keep, holdout)
    print(train_autoencoder(index, out, extra.get("preset", preset), extra.get("resolution", resolution), opts))


@app.command("text")
def text(index: Path = INDEX, out: Path = OUT, preset: str = PRESET, resolution: int = RESOLUTION,
         config: Path = CONFIG, steps: int = STEPS, batch_size: int = BATCH, lr: float = LR,
         grad_accum: int = ACCUM, mixed_precision: str = MP, seed: int = SEED, checkpoint_every: int = CKPT,
         validate_every: int = VAL, resume: bool = RESUME, gradient_checkpointing: bool = GC,
         cpu: bool = CPU, minutes: float = MINUTES, ema_decay: float = EMA, keep: str = KEEP,
         holdout: float = HOLDOUT, prompt_dropout: float = typer.Option(None, "--prompt-dropout")) -> None:
    """Stage 1: text-conditioned latent diffusion UNet -> OUT/unet (needs OUT/vae)."""
    from mrgen_nnunet.generator.train import train_text

    opts, extra = _common(config, steps, batch_size, lr, grad_accum, mixed_precision, seed, checkpoint_every,
                          validate_every, resume, gradient_checkpointing, cpu, minutes, ema_decay, keep, holdout,
                          prompt_dropout=prompt_dropout)
    print(train_text(index, out, extra.get("preset", preset), extra.get("resolution", resolution), opts))


@app.command("mask")
def mask(index: Path = INDEX, out: Path = OUT, target: str = typer.Option(None, "--target", help="e.g. LGE"),
         preset: str = PRESET, resolution: int = RESOLUTION, config: Path = CONFIG, steps: int = STEPS,
         batch_size: int = BATCH, lr: float = LR, grad_accum: int = ACCUM, mixed_precision: str = MP,
         seed: int = SEED, checkpoint_every: int = CKPT, validate_every: int = VAL, resume: bool = RESUME,
         gradient_checkpointing: bool = GC, cpu: bool = CPU, minutes: float = MINUTES, ema_decay: float = EMA,
         keep: str = KEEP, holdout: float = HOLDOUT,
         target_mix: float = typer.Option(None, "--target-mix", help="Fraction of unlabeled target slices."),
         mask_encoding: str = typer.Option(None, "--mask-encoding", help="weighted | onehot")) -> None:
    """Stage 2: mask ControlNet from the stage-1 UNet -> OUT/controlnet (needs OUT/vae, OUT/unet)."""
    from mrgen_nnunet.generator.train import train_mask

    opts, extra = _common(config, steps, batch_size, lr, grad_accum, mixed_precision, seed, checkpoint_every,
                          validate_every, resume, gradient_checkpointing, cpu, minutes, ema_decay, keep, holdout,
                          target_mix=target_mix,
                          mask_encoding=mask_encoding)
    target = target or extra.get("target")
    if not target:
        raise MRGenError("no target modality", "--target", "pass e.g. --target LGE")
    print(train_mask(index, out, target, extra.get("preset", preset), extra.get("resolution", resolution), opts))


@app.command("all")
def all_stages(index: Path = INDEX, out: Path = OUT, target: str = typer.Option(..., "--target"),
               preset: str = PRESET, resolution: int = RESOLUTION, steps: int = typer.Option(200, "--steps"),
               batch_size: int = BATCH, seed: int = SEED, cpu: bool = CPU, minutes: float = MINUTES,
               ema_decay: float = EMA) -> None:
    """All three stages, --steps (and at most --minutes) each -> a complete generator folder."""
    from mrgen_nnunet.generator.train import train_generator

    opts, _ = _options(None, batch_size=batch_size, seed=seed, cpu=cpu, steps=steps, resolution=resolution,
                       minutes=minutes, ema_decay=ema_decay)
    print(json.dumps(str(train_generator(index, out, preset, target, steps, resolution, opts))))
