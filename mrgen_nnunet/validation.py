"""Range checks shared by the CLI and the config loaders: each raises a one-line MRGenError naming the option.

`where` is the option as the user wrote it (`--steps`, or `steps (run.toml)` for a config key).
"""

from __future__ import annotations

import math

from mrgen_nnunet.errors import MRGenError


def at_least(value: float | None, minimum: float, where: str, fix: str | None = None) -> None:
    """`value >= minimum` (None: not given, nothing to check)."""
    if value is not None and not (isinstance(value, (int, float)) and value >= minimum):
        raise MRGenError(f"must be a number >= {minimum}, got {value!r}", where, fix or f"pass a value >= {minimum}")


def between(value: float | None, low: float, high: float, where: str, fix: str | None = None) -> None:
    """`low <= value <= high` (None: not given)."""
    if value is not None and not (isinstance(value, (int, float)) and not math.isnan(value) and low <= value <= high):
        raise MRGenError(f"must be a number in {low}..{high}, got {value!r}", where,
                         fix or f"pass a value between {low} and {high}")


def one_of(value: str | None, choices: tuple[str, ...], where: str) -> None:
    """`value in choices` (None: not given)."""
    if value is not None and value not in choices:
        raise MRGenError(f"unknown value {value!r}", where, f"use one of {', '.join(choices)}")


def check_device(device: str, where: str = "--device") -> None:
    """`cuda` / `cuda:N` must name a visible GPU (torch's own error is a multi-line assertion)."""
    if not device.startswith("cuda"):
        return
    import torch

    index = device.partition(":")[2]
    if not torch.cuda.is_available():
        raise MRGenError(f"no CUDA GPU is visible for {device!r}", where,
                         "use --device cpu, or check the driver and CUDA_VISIBLE_DEVICES")
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        raise MRGenError(f"no GPU {device!r} ({torch.cuda.device_count()} visible)", where,
                         f"use cuda:0..cuda:{torch.cuda.device_count() - 1}")
