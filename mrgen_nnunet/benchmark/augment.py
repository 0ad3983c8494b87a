"""Randomised-contrast baselines: the cheap alternatives a synthetic dataset must beat.

(a) `label_map_image` — SynthSeg / TorchIO `RandomLabelsToImage` style: draw a new image from a label map with a
    random mean (and spread) per label, Gaussian blur (partial volume), a smooth bias field and Rician noise.
    A cardiac label map has 3 structures and one huge background, so the background is first split into
    `background_classes` pseudo-labels by intensity quantiles of the source image (body, fat, lungs, ...);
    otherwise every background pixel would get one value and the network would learn "non-constant = organ".
(b) `intensity_remap` — GIN / BigAug style: the source image itself passed through a random non-monotonic
    piecewise-linear intensity curve, then a random gamma. Anatomy and texture stay; contrast is scrambled.

Both take and return 2D slices (H, W) float32; outputs are in [0, 1000] (the raw scale of our MRI; nnU-Net
z-scores per image anyway). `augment_slice_dataset` writes several such copies of every case of a slice dataset
as a new slice dataset (labels unchanged, patient ids kept so splits still group by patient).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

STYLES = ("labelmap", "remap")


def _unit(image: np.ndarray) -> np.ndarray:
    """Robust min–max (0.5–99.5 percentiles) to [0, 1]."""
    lo, hi = np.percentile(image, [0.5, 99.5])
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(image, dtype=np.float64)


def bias_field(shape: tuple[int, int], rng: np.random.Generator, strength: float) -> np.ndarray:
    """Smooth multiplicative field (H, W), exp of a random 2nd-order polynomial with peak-to-peak log ≈ strength."""
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    field = np.tensordot(rng.normal(size=5), np.stack([x, y, x * y, x**2, y**2]), axes=1)
    span = float(field.max() - field.min()) or 1.0
    return np.exp(strength * (field - field.mean()) / span)


def label_map_image(
    label: np.ndarray,
    image: np.ndarray,
    rng: np.random.Generator,
    background_classes: int = 4,
    blur_sigma: tuple[float, float] = (0.3, 1.2),
    bias: float = 0.6,
    noise: tuple[float, float] = (0.0, 0.05),
) -> np.ndarray:
    """(a) A new image from a label map. label (H, W) int, image (H, W) any range -> (H, W) float32 in [0, 1000].

    Classes = every label value > 0, plus `background_classes` intensity-quantile classes of the background.
    Each class gets mean ~ U(0, 1) and within-class spread ~ U(0, 0.08); then blur with sigma ~ U(blur_sigma)
    pixels, a bias field, Rician noise with sigma ~ U(noise).
    """
    label = np.asarray(label)
    unit = _unit(np.asarray(image, dtype=np.float64))
    classes = np.zeros(label.shape, dtype=np.int64)
    background = label == 0
    if background.any():
        edges = np.quantile(unit[background], np.linspace(0, 1, background_classes + 1)[1:-1])
        classes[background] = np.searchsorted(edges, unit[background])
    values = np.unique(label[~background])
    for i, v in enumerate(values):
        classes[label == v] = background_classes + i
    n = background_classes + len(values)
    means, spreads = rng.uniform(0, 1, n), rng.uniform(0, 0.08, n)
    out = means[classes] + spreads[classes] * rng.normal(size=label.shape)
    out = gaussian_filter(out, rng.uniform(*blur_sigma)) * bias_field(label.shape, rng, bias)
    sigma = rng.uniform(*noise)
    out = np.hypot(out + rng.normal(0, sigma, out.shape), rng.normal(0, sigma, out.shape))
    return (_unit(out) * 1000.0).astype(np.float32)


def random_curve(rng: np.random.Generator, points: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Control points (x, y) of a random non-monotonic piecewise-linear map [0, 1] -> [0, 1]."""
    x = np.concatenate([[0.0], np.sort(rng.uniform(0, 1, points - 2)), [1.0]])
    return x, rng.uniform(0, 1, points)


def intensity_remap(
    image: np.ndarray,
    rng: np.random.Generator,
    points: int = 6,
    gamma: tuple[float, float] = (0.5, 2.0),
) -> np.ndarray:
    """(b) GIN/BigAug style. image (H, W) any range -> (H, W) float32 in [0, 1000].

    Robust min–max to [0, 1], a random non-monotonic piecewise-linear curve with `points` control points,
    then `y ** g` with log g ~ U(log gamma).
    """
    x, y = random_curve(rng, points)
    out = np.interp(_unit(np.asarray(image, dtype=np.float64)), x, y)
    out = np.clip(out, 0.0, 1.0) ** np.exp(rng.uniform(np.log(gamma[0]), np.log(gamma[1])))
    return (out * 1000.0).astype(np.float32)


def augment_slice(style: str, image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One randomised copy of a slice: (H, W) -> (H, W) float32 in [0, 1000]. style in STYLES."""
    if style == "labelmap":
        return label_map_image(label, image, rng)
    return intensity_remap(image, rng)


def augment_slice_dataset(
    source: Path,
    out_raw: Path,
    dataset_id: int,
    name: str,
    style: str,
    copies: int,
    seed: int,
    force: bool = False,
) -> Path:
    """Write `copies` randomised copies of every training case of the slice dataset folder `source`.

    New case ids `"{case}_{style}{j}"`, labels copied unchanged, `mrgen.patients` kept (source patient ids),
    every case listed in `mrgen.synthetic_cases` (not a real acquisition: validation skips it). Returns the new dataset folder.
    """
    from mrgen_nnunet.benchmark.datasets import SliceCase, write_slice_dataset
    from mrgen_nnunet.data.io import read_image
    from mrgen_nnunet.data.nnunet_raw import list_cases, read_dataset_json

    meta = read_dataset_json(source)
    patients = meta["mrgen"]["patients"]
    rng = np.random.default_rng(seed)

    def cases():
        for case in list_cases(source):
            image, geometry = read_image(source / "imagesTr" / f"{case}_0000.nii.gz")
            label, _ = read_image(source / "labelsTr" / f"{case}.nii.gz")
            for j in range(copies):
                yield SliceCase(f"{case}_{style}{j}", patients[case], augment_slice(style, image, label, rng),
                                label, geometry)

    return write_slice_dataset(out_raw, dataset_id, name, cases(), meta, synthetic=True, force=force)
