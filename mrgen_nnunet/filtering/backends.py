"""Filter backends: one typed protocol, one registry (`FILTERS`), `build_filter` to pick one by name.

Every backend has `name`, `id` (recorded in provenance), `checks` (False: it scores nothing and the engine keeps
the first k candidates), `check_labels(labels)` (refuse a source label map it cannot judge) and
`score(images (B, N, N) float32 in [-1, 1], label_maps (B, N, N) uint8, labels {name: int},
pixel_spacing [mm per model pixel per image] | None) -> list[CandidateScores]`.
A new backend is one builder registered here (`register_filter`): the CLI, the benchmark config, the Ray backend
and the engine all read `FILTERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.filtering.selection import CandidateScores


@runtime_checkable
class FilterBackend(Protocol):
    name: str
    id: str
    checks: bool

    def check_labels(self, labels: dict[str, int]) -> None: ...

    def score(self, images: np.ndarray, label_maps: np.ndarray, labels: dict[str, int],
              pixel_spacing: list[float] | None = None) -> list[CandidateScores]: ...


@dataclass(frozen=True)
class FilterSettings:
    """What any backend may need to load itself (each builder reads its own fields)."""

    sam2_config: str = "tiny"
    sam2_checkpoint: str | Path | None = None
    sam2_prompt: str = "mask"
    filter_model: str | Path | None = None
    device: str = "cpu"
    trust_checkpoint: bool = False


class NoFilter:
    """No quality check: scores nothing; the engine then keeps the first k candidates and says so."""

    name = "none"
    id = "none"
    checks = False

    def check_labels(self, labels: dict[str, int]) -> None:
        pass

    def score(self, images: np.ndarray, label_maps: np.ndarray, labels: dict[str, int],
              pixel_spacing: list[float] | None = None) -> list[CandidateScores]:
        return [CandidateScores({}) for _ in images]


def _sam2(s: FilterSettings) -> FilterBackend:
    from mrgen_nnunet.filtering.sam2_filter import SAM2Filter, build_sam2_predictor

    if s.sam2_checkpoint is None:
        raise MRGenError("the sam2 filter needs a checkpoint", "--sam2-checkpoint",
                         "download sam2.1_hiera_tiny.pt (or another size) and pass it, or use --filter nnunet/none")
    return SAM2Filter(build_sam2_predictor(s.sam2_config, s.sam2_checkpoint, s.device), prompt=s.sam2_prompt)


def _nnunet(s: FilterSettings) -> FilterBackend:
    from mrgen_nnunet.filtering.nnunet_filter import NnUNetFilter

    if s.filter_model is None:
        raise MRGenError("the nnunet filter needs a trained model folder", "--filter-model",
                         "pass nnUNet_results/DatasetNNN_X/nnUNetTrainer__nnUNetPlans__2d")
    return NnUNetFilter.from_folder(s.filter_model, device=s.device, trust=s.trust_checkpoint)


# name -> builder; `sam2` needs a checkpoint (a random model is refused; tests build one explicitly), `nnunet` a
# trained model folder (fold_0/checkpoint_final.pth, read with weights_only unless trusted)
FILTERS: dict[str, Callable[[FilterSettings], FilterBackend]] = {
    "sam2": _sam2,
    "nnunet": _nnunet,
    "none": lambda s: NoFilter(),
}


def register_filter(name: str, builder: Callable[[FilterSettings], FilterBackend]) -> None:
    """Make `--filter NAME` (CLI, benchmark config, Ray backend) build its backend with `builder`."""
    FILTERS[name] = builder


def build_filter(name: str, settings: FilterSettings | None = None) -> FilterBackend:
    """The backend registered as `name`, loaded from its files."""
    if name not in FILTERS:
        raise MRGenError(f"unknown filter {name!r}", "--filter", f"use one of {', '.join(FILTERS)}")
    backend = FILTERS[name](settings or FilterSettings())
    if not isinstance(backend, FilterBackend):
        raise MRGenError(f"filter {name!r} does not implement FilterBackend", "--filter",
                         "give the backend name, id, checks, check_labels() and score()")
    return backend


def filter_settings(o) -> FilterSettings:
    """The FilterSettings of a SynthesisOptions."""
    return FilterSettings(o.sam2_config, o.sam2_checkpoint, o.sam2_prompt, o.filter_model, o.device,
                          o.trust_checkpoint)
