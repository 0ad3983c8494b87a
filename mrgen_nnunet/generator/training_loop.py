"""The optimisation loop every generator stage shares: options, checkpoints/resume, EMA weights, time budget.

A stage hands `run_loop` a model, a `loss_fn(model, rng, device) -> scalar` and a `validate(model) -> (B,1,N,N)`
grid in [-1, 1]. The loop runs AdamW under accelerate (device, mixed precision, gradient accumulation) until
`steps` optimizer steps or `minutes` of wall time, whichever comes first; it keeps an exponential moving average
of the weights when `ema_decay` > 0 (diffusers' `EMAModel`, the copy that is saved and sampled from), writes
`checkpoints/<stage>/step_<N>/` (model, optimizer, EMA, state.json) and `logs/<stage>_loss.csv`.

Checkpoint choice (`keep="best"`): the stage also hands a `score(model) -> float`, a loss on slices of patients held
out of training (lower is better). Every checkpoint and the last step are scored with the weights that would be
saved (the EMA when kept), logged to `logs/<stage>_validation.csv`, and the best of them is the model returned.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from mrgen_nnunet.data.io import write_text_atomic
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.generator.folder import replace_dir
from mrgen_nnunet.generator.training_figures import save_grid, save_loss_plot
from mrgen_nnunet.progress import StepProgress

# EMA decay per stage when TrainOptions.ema_decay is None: the diffusion stages average, the autoencoder does not
DEFAULT_EMA = {"autoencoder": 0.0, "text": 0.999, "mask": 0.999}


@dataclass
class TrainOptions:
    """Options shared by the stages (CLI flags / config file keys of the same names)."""

    steps: int = 1000  # optimizer steps (the most; `minutes` may stop earlier)
    minutes: float = 0.0  # wall-time budget per stage; 0: none
    batch_size: int = 4  # per micro-batch
    lr: float | None = None  # None: the preset's rate for the stage
    grad_accum: int = 1  # micro-batches per optimizer step (accelerator.accumulate)
    mixed_precision: str = "no"  # no | fp16 | bf16
    seed: int = 0
    checkpoint_every: int = 0  # 0: no intermediate checkpoints
    validate_every: int = 0  # 0: one validation grid at the end only
    ema_decay: float | None = None  # None: DEFAULT_EMA of the stage; 0: no EMA
    resume: bool = False
    gradient_checkpointing: bool = False
    prompt_dropout: float = 0.1  # stages 1-2: prompt -> "" with this probability (CFG)
    target_mix: float = 0.5  # stage 2: fraction of each batch taken from unlabeled target slices
    mask_encoding: str = "weighted"  # stage 2: weighted | onehot
    cpu: bool = False  # force CPU even when a GPU is present
    quiet: bool = False  # no progress bar
    keep: str = "last"  # last | best: the weights saved are the last step's, or the best-scoring checkpoint's
    holdout: float = 0.1  # keep=best: fraction of patients held out of training to score the checkpoints


def _write_folder(folder: Path, fill) -> None:
    """`fill(tmp)` writes a temporary sibling folder (a stale one from a killed run is cleared), then it is swapped
    in for `folder`: a kill leaves the old folder or the new one, never half of one."""
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    fill(tmp)
    replace_dir(tmp, folder)


def save_model(model, folder: Path) -> None:
    """`save_pretrained` (safetensors) into `folder`, atomically."""
    _write_folder(folder, lambda tmp: model.save_pretrained(str(tmp), safe_serialization=True))


def _accelerator(out_dir: Path, opts: TrainOptions):
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration

    if opts.mixed_precision not in ("no", "fp16", "bf16"):
        raise MRGenError(f"unknown mixed precision {opts.mixed_precision!r}", "--mixed-precision", "use no|fp16|bf16")
    return Accelerator(mixed_precision=opts.mixed_precision, gradient_accumulation_steps=opts.grad_accum,
                       cpu=opts.cpu, log_with="tensorboard",
                       project_config=ProjectConfiguration(project_dir=str(out_dir), logging_dir=str(out_dir / "logs")))


def latest_checkpoint(out_dir: Path, stage: str) -> Path | None:
    root = out_dir / "checkpoints" / stage
    found = [p for p in root.glob("step_*") if p.name[5:].isdigit()] if root.is_dir() else []  # not step_N.tmp
    found.sort(key=lambda p: int(p.name[5:]))
    return found[-1] if found else None


def _resume(out_dir: Path, stage: str, state: dict, model, optimizer, ema) -> int:
    """Load the newest checkpoint of this stage; returns the step to continue from."""
    ckpt = latest_checkpoint(out_dir, stage)
    if ckpt is None:
        raise MRGenError(f"no {stage} checkpoint to resume from", out_dir / "checkpoints" / stage,
                         "drop --resume or set --checkpoint-every on the first run")
    saved = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    for key in ("stage", "preset", "resolution"):
        if saved.get(key) != state[key]:
            raise MRGenError(f"--resume from an unrelated run ({key} {saved.get(key)!r} ≠ {state[key]!r})", ckpt,
                             "resume with the same stage/preset/resolution, or use a fresh --out")
    from mrgen_nnunet.weights import load_torch_file

    _load_model_and_ema(ckpt, model, ema)
    optimizer.load_state_dict(load_torch_file(ckpt / "optimizer.pt"))
    return int(saved["step"])


def _load_model_and_ema(ckpt: Path, model, ema) -> None:
    """A checkpoint's model weights into `model` and, when `ema` is given, its EMA state into `ema`."""
    from safetensors.torch import load_file

    from mrgen_nnunet.weights import load_torch_file

    model.load_state_dict(load_file(str(sorted((ckpt / "model").glob("*.safetensors"))[0])))
    if ema is not None:
        if not (ckpt / "ema.pt").is_file():
            raise MRGenError("the checkpoint has no EMA weights", ckpt, "resume with --ema-decay 0, as it was made")
        ema.load_state_dict(load_torch_file(ckpt / "ema.pt"))


def _checkpoint(out_dir: Path, stage: str, state: dict, step: int, model, optimizer, ema) -> None:
    def fill(tmp: Path) -> None:
        model.save_pretrained(str(tmp / "model"), safe_serialization=True)
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        if ema is not None:
            torch.save(ema.state_dict(), tmp / "ema.pt")
        (tmp / "state.json").write_text(json.dumps(dict(state, step=step), indent=2), encoding="utf-8")

    _write_folder(out_dir / "checkpoints" / stage / f"step_{step}", fill)


def _ema(model, decay: float):
    """diffusers' EMAModel over the trainable parameters (warm-up: decay min(decay, (1+t)/(10+t)))."""
    from diffusers.training_utils import EMAModel

    return EMAModel(_trainable(model), decay=decay)


def _trainable(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def run_loop(stage: str, out_dir: Path, state: dict, lr: float, model, loss_fn, validate, opts: TrainOptions,
             score=None):
    """Train `model` (AdamW on its trainable parameters); returns (model with the saved weights, in eval mode,
    steps done). `state` (stage, preset, resolution, index) must match on --resume. With `opts.keep == "best"`,
    `score` (model -> held-out loss) picks the returned weights among the checkpoints and the last step."""
    if opts.keep not in ("last", "best"):
        raise MRGenError(f"unknown --keep {opts.keep!r}", "--keep", "use last or best")
    if opts.keep == "best" and (score is None or not opts.checkpoint_every):
        raise MRGenError("--keep best needs checkpoints to choose from", "--checkpoint-every",
                         "set --checkpoint-every N (and hold out patients with --holdout)")
    accelerator = _accelerator(out_dir, opts)
    if opts.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(_trainable(model), lr=lr, weight_decay=1e-2)
    decay = DEFAULT_EMA.get(stage, 0.0) if opts.ema_decay is None else opts.ema_decay
    ema = _ema(model, decay) if decay > 0 else None
    start = _resume(out_dir, stage, state, model, optimizer, ema) if opts.resume else 0
    model, optimizer = accelerator.prepare(model, optimizer)
    if ema is not None:
        ema.to(accelerator.device)
    accelerator.init_trackers(f"{stage}", config={k: v for k, v in asdict(opts).items() if v is not None})
    rng = np.random.default_rng(opts.seed + start)
    torch.manual_seed(opts.seed + start)
    csv = out_dir / "logs" / f"{stage}_loss.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    lines = csv.read_text(encoding="utf-8").splitlines() if (opts.resume and csv.is_file()) else ["step,loss"]
    lines = [ln for ln in lines if ln == "step,loss" or int(ln.split(",")[0]) <= start]
    scores = _read_scores(out_dir / "logs" / f"{stage}_validation.csv", start) if score is not None else {}
    deadline = time.monotonic() + opts.minutes * 60 if opts.minutes > 0 else None
    step = start
    model.train()
    with StepProgress(f"train {stage}", opts.steps, start, quiet=opts.quiet) as bar:
        for step in range(start + 1, opts.steps + 1):  # noqa: B007 (step is used after the loop)
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
            if ema is not None:
                ema.step(_trainable(accelerator.unwrap_model(model)))
            accelerator.log({f"{stage}/loss": total}, step=step)
            lines.append(f"{step},{total:.6f}")
            bar.update(step, total)
            if opts.checkpoint_every and step % opts.checkpoint_every == 0 and step < opts.steps:
                if score is not None:
                    scores[step] = float(_with_ema(accelerator.unwrap_model(model), ema, score))
                    _write_scores(out_dir / "logs" / f"{stage}_validation.csv", scores)
                _checkpoint(out_dir, stage, state, step, accelerator.unwrap_model(model), optimizer, ema)
                write_text_atomic("\n".join(lines) + "\n", csv)  # the loss log survives a kill after this checkpoint
            if opts.validate_every and step % opts.validate_every == 0 and step < opts.steps:
                _validate(accelerator.unwrap_model(model), ema, validate, out_dir / "validation" / f"{stage}_step{step}.png")
            if deadline is not None and time.monotonic() >= deadline:
                break
    if step < opts.steps and not opts.quiet:
        print(f"train {stage}: time budget of {opts.minutes:g} min reached at step {step}/{opts.steps}", flush=True)
    accelerator.end_training()
    write_text_atomic("\n".join(lines) + "\n", csv)
    save_loss_plot(csv, csv.with_suffix(".png"))
    model = accelerator.unwrap_model(model).eval()
    if ema is not None:  # the averaged weights are the ones saved and sampled from
        ema.copy_to(_trainable(model))
    if score is not None:
        scores[step] = float(score(model))
        _write_scores(out_dir / "logs" / f"{stage}_validation.csv", scores)
        best = min(scores, key=lambda k: (scores[k], -k))
        if best != step:
            _load_weights(out_dir / "checkpoints" / stage / f"step_{best}", model, ema is not None)
        if not opts.quiet:
            print(f"train {stage}: kept step {best} (held-out loss {scores[best]:.5f}; last step {step}: "
                  f"{scores[step]:.5f})", flush=True)
    save_grid(validate(model), out_dir / "validation" / f"{stage}_step{step}.png")
    return model, step


def _with_ema(model, ema, fn):
    """fn(model) evaluated with the EMA weights (when kept) in eval mode; training weights and mode restored."""
    model.eval()
    if ema is not None:
        ema.store(_trainable(model))
        ema.copy_to(_trainable(model))
    try:
        with torch.no_grad():
            return fn(model)
    finally:
        if ema is not None:
            ema.restore(_trainable(model))
        model.train()


def _read_scores(path: Path, upto: int) -> dict[int, float]:
    if not path.is_file():
        return {}
    rows = [ln.split(",") for ln in path.read_text(encoding="utf-8").split()[1:]]
    return {int(k): float(v) for k, v in rows if int(k) <= upto}


def _write_scores(path: Path, scores: dict[int, float]) -> None:
    write_text_atomic("step,val_loss\n" + "".join(f"{k},{v:.6f}\n" for k, v in sorted(scores.items())), path)


def _load_weights(ckpt: Path, model, averaged: bool) -> None:
    """The weights a checkpoint would have saved: its EMA average when kept, else its model."""
    ema = _ema(model, 0.5) if averaged else None  # the decay is irrelevant: only the loaded average is used
    _load_model_and_ema(ckpt, model, ema)
    if ema is not None:
        ema.copy_to(_trainable(model))


def _validate(model, ema, validate, path: Path) -> None:
    """A validation grid from the EMA weights (when kept), the training weights restored afterwards."""
    _with_ema(model, ema, lambda m: save_grid(validate(m), path))
