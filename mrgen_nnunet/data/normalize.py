"""MRGen-compatible slice normalisation and its inverse.

Forward: per-slice min–max to [-1, 1], pad to a square with the background value (-1), resize to N×N.
Inverse: resize back to the padded square, crop the padding, rescale to the slice's original value range —
the synthetic slice then lies exactly on the source slice's pixel grid, so the source label is reused unresampled.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class SliceNormalisation:
    """What `normalize_slice` did to one (H, W) slice, enough to undo it."""

    shape: tuple[int, int]  # original (H, W)
    vmin: float
    vmax: float
    pad: tuple[int, int, int, int]  # (top, bottom, left, right) pixels added to make the square
    size: int  # model resolution N

    def model_spacing(self, spacing_mm: float) -> float:
        """mm per pixel on the (N, N) model grid of a slice whose original pixels are `spacing_mm` apart."""
        return float(max(self.shape[0] + self.pad[0] + self.pad[1], 1)) * float(spacing_mm) / self.size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SliceNormalisation:
        return cls(tuple(d["shape"]), float(d["vmin"]), float(d["vmax"]), tuple(d["pad"]), int(d["size"]))


def _square_pad(h: int, w: int) -> tuple[int, int, int, int]:
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    return top, side - h - top, left, side - w - left


def _resize(x: np.ndarray, size: int, mode: str) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]
    if mode == "nearest":
        out = F.interpolate(t, size=(size, size), mode="nearest-exact")
    else:
        out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out[0, 0].numpy()


def normalize_slice(image: np.ndarray, size: int) -> tuple[np.ndarray, SliceNormalisation]:
    """(H, W) intensities (any range, finite) -> ((size, size) float32 in [-1, 1], info for the inverse).

    A constant slice maps to all -1 (no division by zero).
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 2:
        raise ValueError(f"expected a 2D slice, got shape {image.shape}")
    vmin, vmax = float(image.min()), float(image.max())
    scaled = (image - vmin) / (vmax - vmin) if vmax > vmin else np.zeros_like(image)
    pad = _square_pad(*image.shape)
    squared = np.pad(scaled, ((pad[0], pad[1]), (pad[2], pad[3])), constant_values=0.0)
    resized = squared if squared.shape[0] == size else _resize(squared, size, "bilinear")
    out = np.clip(resized * 2.0 - 1.0, -1.0, 1.0).astype(np.float32)
    return out, SliceNormalisation(tuple(image.shape), vmin, vmax, pad, size)


def normalize_label(label: np.ndarray, info: SliceNormalisation) -> np.ndarray:
    """(H, W) integer label map -> (size, size) uint8 on the model grid (pad with 0, nearest resize)."""
    top, bottom, left, right = info.pad
    squared = np.pad(np.asarray(label), ((top, bottom), (left, right)), constant_values=0)
    if squared.shape[0] == info.size:
        return squared.astype(np.uint8)
    return np.rint(_resize(squared.astype(np.float32), info.size, "nearest")).astype(np.uint8)


def denormalize_slice(x: np.ndarray, info: SliceNormalisation, rescale: bool = True) -> np.ndarray:
    """(size, size) values in [-1, 1] -> (H, W) float32 on the source slice's grid.

    With `rescale` the values are mapped back to [vmin, vmax] of the source slice; otherwise to [0, 1].
    """
    x = np.asarray(x, dtype=np.float32)
    top, bottom, left, right = info.pad
    side = info.shape[0] + top + bottom
    unit = (np.clip(x, -1.0, 1.0) + 1.0) / 2.0
    squared = unit if unit.shape[0] == side else _resize(unit, side, "bilinear")
    cropped = squared[top: top + info.shape[0], left: left + info.shape[1]]
    cropped = np.clip(cropped, 0.0, 1.0)
    if not rescale:
        return cropped.astype(np.float32)
    return (cropped * (info.vmax - info.vmin) + info.vmin).astype(np.float32)
