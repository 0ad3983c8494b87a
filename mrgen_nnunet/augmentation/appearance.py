"""Appearance randomisation of one 2D slice (pure numpy / torch): anatomy and labels kept, contrast redrawn.

The cross-sequence methods that work without any target image all randomise appearance so that a network
trained on one MRI sequence cannot rely on its contrast:

- `global_curve`     BigAug / SLAug global location-scale: a random (possibly non-monotonic) intensity curve of
                     the whole image, then a random scale and shift.
- `class_location_scale`  SLAug class-level: every structure (and the background) gets its own random curve,
                     scale and shift, so "myocardium darker than blood" stops being a cue. Classes are blended
                     with soft (blurred) masks: a hard step exactly on the label border would be a shortcut.
- `gin`              GIN (Ouyang et al. 2022): the image through a random shallow convolutional network, mixed
                     with the original at a random ratio; texture and local contrast change together.
- `ipa_blend`        GIN+IPA's interventional pseudo-correlation augmentation (Ouyang et al. 2022): two
                     independent draws of the styles above blended by a smooth random field, so intensity varies
                     *within* a structure too (e.g. an enhanced patch inside LGE's nulled myocardium).
- `label_map_image`  SynthSeg style: a new image drawn from the label map (random mean/spread per class, the
                     background split into intensity classes), blurred, with a bias field and Rician noise.
- `intensity_remap`  GIN/BigAug-style fixed copies of the benchmark's `remap` row: random curve + gamma.

Conventions: `image` is (H, W) (or any shape for the point-wise styles) float of any range; `label` is an int
array of the same shape whose values <= 0 are background (nnU-Net pads segmentations with -1). Every function
returns float32 in [0, 1] unless stated, and draws all randomness from the `rng` it is given (same seed, same
output).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def unit_range(image: np.ndarray, lower: float = 0.5, upper: float = 99.5) -> np.ndarray:
    """Robust min-max to [0, 1]: the `lower`/`upper` percentiles map to 0/1, clipped. Constant -> zeros."""
    image = np.asarray(image, dtype=np.float64)
    lo, hi = np.percentile(image, [lower, upper])
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0) if hi > lo else np.zeros_like(image)


def bias_field(shape: tuple[int, int], rng: np.random.Generator, strength: float) -> np.ndarray:
    """Smooth multiplicative field (H, W), exp of a random 2nd-order polynomial with peak-to-peak log ≈ strength."""
    y, x = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    field = np.tensordot(rng.normal(size=5), np.stack([x, y, x * y, x**2, y**2]), axes=1)
    span = float(field.max() - field.min()) or 1.0
    return np.exp(strength * (field - field.mean()) / span)


def random_curve(rng: np.random.Generator, points: int = 6, monotonic: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Control points (x, y), each (points,), of a random piecewise-linear map [0, 1] -> [0, 1].

    Non-monotonic by default (y values in random order); `monotonic` sorts y and randomly flips it (an inverted
    contrast is still a monotonic map).
    """
    x = np.concatenate([[0.0], np.sort(rng.uniform(0, 1, points - 2)), [1.0]])
    y = rng.uniform(0, 1, points)
    if monotonic:
        y = np.sort(y)
        if rng.uniform() < 0.5:
            y = y[::-1]
    return x, y


def _location_scale(unit: np.ndarray, rng: np.random.Generator, scale: tuple[float, float],
                    shift: float) -> np.ndarray:
    """(unit - mean) * s + mean + l with s ~ U(scale), l ~ N(0, shift); clipped to [0, 1]."""
    mean = float(unit.mean()) if unit.size else 0.0
    s, loc = rng.uniform(*scale), rng.normal(0.0, shift)
    return np.clip((unit - mean) * s + mean + loc, 0.0, 1.0)


def global_curve(image: np.ndarray, rng: np.random.Generator, points: int = 5, p_monotonic: float = 0.5,
                 scale: tuple[float, float] = (0.8, 1.2), shift: float = 0.1) -> np.ndarray:
    """Whole-image random curve (monotonic with probability `p_monotonic`) then location-scale. Any shape."""
    x, y = random_curve(rng, points, monotonic=rng.uniform() < p_monotonic)
    return _location_scale(np.interp(unit_range(image), x, y), rng, scale, shift).astype(np.float32)


def soft_class_weights(label: np.ndarray, classes: np.ndarray, sigma: float) -> np.ndarray:
    """(K, H, W) blending weights of the K `classes` (values of `label`, background = values <= 0 folded into the
    first class 0), Gaussian-blurred with `sigma` pixels and normalised to sum to 1 at every pixel."""
    label = np.where(np.asarray(label) > 0, label, 0)
    masks = np.stack([(label == c).astype(np.float64) for c in classes])
    if sigma > 0:
        masks = np.stack([gaussian_filter(m, sigma) for m in masks])
    return masks / np.maximum(masks.sum(0), 1e-8)


def class_location_scale(image: np.ndarray, label: np.ndarray, rng: np.random.Generator, points: int = 5,
                         scale: tuple[float, float] = (0.8, 1.2), shift: float = 0.15,
                         edge_sigma: float = 1.0) -> np.ndarray:
    """Per-class random curve + location-scale, classes blended by soft masks. (H, W) -> (H, W) in [0, 1].

    Background (label <= 0) and every label value present get independent draws; texture inside a class is kept
    (the curve is applied to that class's own intensities).
    """
    unit = unit_range(image)
    classes = np.unique(np.where(np.asarray(label) > 0, label, 0))
    if 0 not in classes:
        classes = np.concatenate([[0], classes])
    weights = soft_class_weights(label, classes, edge_sigma)
    out = np.zeros_like(unit)
    for k in range(len(classes)):
        x, y = random_curve(rng, points, monotonic=rng.uniform() < 0.5)
        out += weights[k] * _location_scale(np.interp(unit, x, y), rng, scale, shift)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def gin(image: np.ndarray, rng: np.random.Generator, layers: int = 4, width: int = 2,
        kernel_sizes: tuple[int, ...] = (1, 3), mix: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """GIN: a random shallow conv net (`layers` convs of `width` channels, kernel drawn from `kernel_sizes`,
    weights N(0, 1), leaky ReLU between) applied to the unit-range image, its output rescaled to the input's
    Frobenius norm, mixed as a·gin + (1-a)·input with a ~ U(mix), then robustly rescaled. (H, W) -> (H, W)."""
    import torch
    import torch.nn.functional as F

    unit = unit_range(image)
    gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
    x = torch.from_numpy(unit).float()[None, None]
    h = x
    for i in range(layers):
        k = int(kernel_sizes[int(rng.integers(len(kernel_sizes)))])
        out_ch = 1 if i == layers - 1 else width
        w = torch.randn(out_ch, h.shape[1], k, k, generator=gen)
        b = torch.randn(out_ch, generator=gen)
        h = F.conv2d(h, w, b, padding=k // 2)
        if i < layers - 1:
            h = F.leaky_relu(h, 0.2)
    h = h * (x.norm() / h.norm().clamp_min(1e-8))
    a = float(rng.uniform(*mix))
    mixed = (a * h + (1.0 - a) * x)[0, 0].numpy()
    return unit_range(mixed, 0.0, 100.0).astype(np.float32)


def smooth_field(shape: tuple[int, int], rng: np.random.Generator, grid: tuple[int, int] = (3, 8)) -> np.ndarray:
    """A smooth random field (H, W) in [0, 1]: uniform values on a g x g control grid (g ~ U{grid}), upsampled
    with cubic splines and rescaled to span [0, 1] (IPA's blending mask)."""
    from scipy.ndimage import zoom

    g = int(rng.integers(grid[0], grid[1] + 1))
    coarse = rng.uniform(0, 1, (g, g))
    field = zoom(coarse, (shape[0] / g, shape[1] / g), order=3, mode="nearest")[: shape[0], : shape[1]]
    field = np.pad(field, [(0, shape[0] - field.shape[0]), (0, shape[1] - field.shape[1])], mode="edge")
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / (hi - lo) if hi > lo else np.full(shape, 0.5)


def ipa_blend(image: np.ndarray, label: np.ndarray, rng: np.random.Generator,
              styles: tuple[str, ...] = ("global", "class", "gin")) -> np.ndarray:
    """Two independent draws, each of a style drawn from `styles`, blended as m·a + (1-m)·b with m a
    `smooth_field`. image, label (H, W) -> (H, W) float32 in [0, 1]."""
    a, b = (STYLES[str(rng.choice(styles))](image, label, rng) for _ in range(2))
    m = smooth_field(np.shape(image), rng)
    return np.clip(m * a + (1.0 - m) * b, 0.0, 1.0).astype(np.float32)


def label_map_image(
    label: np.ndarray,
    image: np.ndarray,
    rng: np.random.Generator,
    background_classes: int = 4,
    blur_sigma: tuple[float, float] = (0.3, 1.2),
    bias: float = 0.6,
    noise: tuple[float, float] = (0.0, 0.05),
) -> np.ndarray:
    """SynthSeg style: a new image from a label map. label (H, W) int, image (H, W) -> (H, W) float32 in [0, 1].

    Classes = every label value > 0, plus `background_classes` intensity-quantile classes of the background
    (body, fat, lungs ...: one flat background would teach "non-constant = organ"). Each class gets mean ~ U(0, 1)
    and within-class spread ~ U(0, 0.08); then blur with sigma ~ U(blur_sigma) pixels, a bias field, Rician noise
    with sigma ~ U(noise).
    """
    label = np.asarray(label)
    unit = unit_range(image)
    classes = np.zeros(label.shape, dtype=np.int64)
    background = label <= 0
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
    return unit_range(out).astype(np.float32)


def intensity_remap(image: np.ndarray, rng: np.random.Generator, points: int = 6,
                    gamma: tuple[float, float] = (0.5, 2.0)) -> np.ndarray:
    """GIN/BigAug-style fixed copy: robust min-max, a random non-monotonic piecewise-linear curve with `points`
    control points, then `y ** g` with log g ~ U(log gamma). Any shape -> float32 in [0, 1]."""
    x, y = random_curve(rng, points)
    out = np.clip(np.interp(unit_range(image), x, y), 0.0, 1.0)
    return (out ** np.exp(rng.uniform(np.log(gamma[0]), np.log(gamma[1])))).astype(np.float32)


# style name -> function(image, label, rng) -> [0, 1] image; the trainer draws from these
STYLES = {
    "global": lambda image, label, rng: global_curve(image, rng),
    "class": lambda image, label, rng: class_location_scale(image, label, rng),
    "gin": lambda image, label, rng: gin(image, rng),
    "labelmap": lambda image, label, rng: label_map_image(label, image, rng),
    "ipa": ipa_blend,
}
