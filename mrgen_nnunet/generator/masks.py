"""Mask encodings for the ControlNet: MRGen's single weighted channel, or one channel per organ.

Both map a label map to values in [-1, 1] and an empty mask (background only) to all -1, which is what stage 2
feeds for unlabeled target slices.
"""

from __future__ import annotations

import numpy as np
import torch

# MRGen's CHAOS weights (liver .3, right kidney .5, left kidney .4, spleen .6).
MRGEN_CHAOS_WEIGHTS = {"liver": 0.3, "right kidney": 0.5, "left kidney": 0.4, "spleen": 0.6}


def foreground_labels(labels: dict[str, int]) -> dict[str, int]:
    """{name: value} without background (value 0), ordered by value."""
    return dict(sorted(((k, v) for k, v in labels.items() if v != 0), key=lambda kv: kv[1]))


def default_label_weights(labels: dict[str, int]) -> dict[str, float]:
    """MRGen's CHAOS weights when every organ has one, else evenly spread k/(K+1), k = 1..K by label value."""
    organs = foreground_labels(labels)
    if organs and all(name.lower() in MRGEN_CHAOS_WEIGHTS for name in organs):
        return {name: MRGEN_CHAOS_WEIGHTS[name.lower()] for name in organs}
    return {name: round((k + 1) / (len(organs) + 1), 4) for k, name in enumerate(organs)}


def mask_channels(encoding: str, labels: dict[str, int]) -> int:
    """Number of ControlNet conditioning channels: 1 for "weighted", one per organ for "onehot"."""
    return 1 if encoding == "weighted" else len(foreground_labels(labels))


def encode_masks(label_maps: np.ndarray, labels: dict[str, int], encoding: str = "weighted",
                 weights: dict[str, float] | None = None) -> torch.Tensor:
    """(B, N, N) integer label maps -> (B, C, N, N) float32 in [-1, 1].

    weighted (C=1): `sum_i bin_i * w_i * 2 - 1` (MRGen: `sum((m_i+1)/2 * w_i)*2-1`); onehot (C=#organs): `bin_i*2-1`.
    """
    maps = torch.as_tensor(np.asarray(label_maps).astype(np.int64))
    organs = foreground_labels(labels)
    if encoding == "weighted":
        weights = weights or default_label_weights(labels)
        out = torch.zeros(maps.shape, dtype=torch.float32)
        for name, value in organs.items():
            out += (maps == value).float() * float(weights[name])
        return (out * 2.0 - 1.0).unsqueeze(1)
    if encoding == "onehot":
        return torch.stack([(maps == v).float() * 2.0 - 1.0 for v in organs.values()], dim=1)
    raise ValueError(f"unknown mask encoding {encoding!r} (weighted|onehot)")
