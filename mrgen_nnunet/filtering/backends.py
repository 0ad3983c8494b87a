"""Filter backends behind one interface, and `build_filter` to pick one by name.

Every backend has `name`, `id` (recorded in provenance) and
`score(images (B, N, N) float32 in [-1, 1], label_maps (B, N, N) uint8, labels {name: int},
pixel_spacing [mm per model pixel per image] | None) -> list[CandidateScores]`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.filtering.selection import CandidateScores

FILTERS = ("sam2", "nnunet", "none")


class NoFilter:
    """No quality check: scores nothing; the engine then keeps the first k candidates and says so."""

    name = "none"
    id = "none"

    def score(self, images: np.ndarray, label_maps: np.ndarray, labels: dict[str, int],
              pixel_spacing: list[float] | None = None) -> list[CandidateScores]:
        return [CandidateScores({}) for _ in images]


def build_filter(name: str, sam2_config: str = "tiny", sam2_checkpoint: str | Path | None = None,
                 sam2_prompt: str = "mask", filter_model: str | Path | None = None, device: str = "cpu",
                 trust_checkpoint: bool = False):
    """The backend called `name` ("sam2" | "nnunet" | "none"), loaded from its files.

    `sam2` needs `sam2_checkpoint` (a random model is refused here; tests build one explicitly),
    `nnunet` needs `filter_model` (a trained nnU-Net model folder with fold_0/checkpoint_final.pth), loaded with
    weights_only unless `trust_checkpoint`.
    """
    if name == "none":
        return NoFilter()
    if name == "sam2":
        from mrgen_nnunet.filtering.sam2_filter import SAM2Filter, build_sam2_predictor

        if sam2_checkpoint is None:
            raise MRGenError("the sam2 filter needs a checkpoint", "--sam2-checkpoint",
                             "download sam2.1_hiera_tiny.pt (or another size) and pass it, or use --filter nnunet/none")
        return SAM2Filter(build_sam2_predictor(sam2_config, sam2_checkpoint, device), prompt=sam2_prompt)
    if name == "nnunet":
        from mrgen_nnunet.filtering.nnunet_filter import NnUNetFilter

        if filter_model is None:
            raise MRGenError("the nnunet filter needs a trained model folder", "--filter-model",
                             "pass nnUNet_results/DatasetNNN_X/nnUNetTrainer__nnUNetPlans__2d")
        return NnUNetFilter.from_folder(filter_model, device=device, trust=trust_checkpoint)
    raise MRGenError(f"unknown filter {name!r}", "--filter", f"use one of {', '.join(FILTERS)}")
