"""What synthesis needs from a generator: the one interface every generator family implements.

`MRGenPipeline` (ours and MRGen's released weights) is the only family today; a new one (a pixel-space model, a
different conditioning) implements `GeneratorPipeline`, registers a loader under a family name, and writes that
name as `family` in its folder's `mrgen_generator.json`; `load_generator` dispatches on it. Its `config` is always a
`GeneratorConfig`: synthesis reads `labels`, `modalities` and `resolution` from it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.generator.folder import CONFIG_FILE, GeneratorConfig, read_config


class GeneratorOutput(Protocol):
    images: torch.Tensor  # (B, 1, N, N) float32 in [-1, 1]


@runtime_checkable
class GeneratorPipeline(Protocol):
    config: GeneratorConfig

    def encode_masks(self, label_maps: np.ndarray) -> torch.Tensor:
        """label_maps (B, N, N) uint8 with the values of `config.labels` -> masks (B, C, N, N) in [-1, 1]."""

    def __call__(self, prompt: list[str], mask: torch.Tensor, num_inference_steps: int, guidance_scale: float,
                 generator: list[torch.Generator], scheduler: str, **translate) -> GeneratorOutput:
        """One image per prompt/mask; sample b depends only on generator[b] and the batch composition.
        `translate` (mode translate): image (B, 1, N, N) in [-1, 1], strength, translate, source_prompt."""


def check_pipeline(pipe, where) -> GeneratorPipeline:
    """`pipe` unchanged if it implements GeneratorPipeline with a GeneratorConfig, else a one-line MRGenError."""
    if not isinstance(pipe, GeneratorPipeline) or not isinstance(pipe.config, GeneratorConfig):
        raise MRGenError(f"{type(pipe).__name__} is not a generator pipeline (needs encode_masks, __call__ and a "
                         "GeneratorConfig as .config)", where, "load it with MRGenPipeline.from_pretrained")
    return pipe


GeneratorLoader = Callable[[Path, "str | None", str], GeneratorPipeline]  # (folder, controlnet, device)
FAMILIES: dict[str, GeneratorLoader] = {}


def register_family(name: str, loader: GeneratorLoader) -> None:
    FAMILIES[name] = loader


def load_generator(path: str | Path, controlnet: str | None, device: str) -> GeneratorPipeline:
    """The generator in `path`, loaded by its family's loader (MRGen's released layout has no config: "mrgen")."""
    folder = Path(path)
    if not folder.is_dir():
        raise MRGenError("generator folder not found", path, "train one with `mrgen-nnunet train` or pass its folder")
    family = read_config(folder).family if (folder / CONFIG_FILE).is_file() else "mrgen"
    if family not in FAMILIES:
        raise MRGenError(f"unknown generator family {family!r}", folder / CONFIG_FILE,
                         f"use one of {', '.join(sorted(FAMILIES))} or register a loader (generator/protocol.py)")
    return check_pipeline(FAMILIES[family](folder, controlnet, device), folder)


def _load_mrgen(folder: Path, controlnet: str | None, device: str) -> GeneratorPipeline:
    from mrgen_nnunet.generator.pipeline import MRGenPipeline  # diffusers only when a generator is loaded

    return MRGenPipeline.from_pretrained(folder, controlnet=controlnet, device=device)


register_family("mrgen", _load_mrgen)
