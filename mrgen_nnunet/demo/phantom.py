"""A procedural two-sequence cardiac phantom: the demo's embedded default dataset.

Each patient is a short stack of axial slices through a torso: a body ellipse with a fat rim, lungs, liver and
back muscle, and a heart made of a left-ventricular (LV) blood pool, the LV myocardium ring around it and a
right-ventricular (RV) crescent. The heart shrinks from base to apex; the RV ends before the apex. Two sequences
render the same kind of anatomy with different tissue contrasts:

- sequence A, "bSSFP"-like: bright blood, dark myocardium, bright fat;
- sequence B, "LGE"-like: grey blood, nulled (dark) myocardium with a bright scar patch in some patients.

Like the real MS-CMRSeg data, the two sequences of one patient are separate acquisitions (different random
draws of the same patient's anatomy), not voxel-aligned. Realism: partial volume (rendered on a 4x finer grid
and block-averaged), a smooth multiplicative bias field, Rician noise, raw intensities in 0..~1000.

Files follow the MS-CMRSeg layout, so the `mscmrseg` converter reads them unchanged:
`<root>/bSSFP/image_K.nii.gz`, `label_K.nii.gz`, `<root>/LGE/image_K.nii.gz`, `label_K.nii.gz`, K = 1..N.
Labels: 0 background, 1 myocardium, 2 LV blood pool, 3 RV.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import Geometry, write_image

LABELS = {"background": 0, "myocardium": 1, "left ventricle": 2, "right ventricle": 3}
SEQUENCES = ("bSSFP", "LGE")

# tissue classes rendered before contrast is applied
AIR, FAT, MUSCLE, LUNG, LIVER, MYO, LV, RV, SCAR = range(9)
_TISSUE_TO_LABEL = np.array([0, 0, 0, 0, 0, 1, 2, 3, 1], dtype=np.uint8)

# mean signal per tissue class (index = class) for each sequence, in [0, 1]
CONTRAST = {
    "bSSFP": np.array([0.02, 0.85, 0.30, 0.06, 0.35, 0.22, 0.95, 0.90, 0.22]),
    "LGE": np.array([0.02, 0.60, 0.32, 0.04, 0.42, 0.08, 0.48, 0.44, 0.92]),
}


@dataclass(frozen=True)
class PhantomSpec:
    """Size of the phantom: `n_patients` per sequence, each (n_slices, size, size) at the given spacing (mm)."""

    n_patients: int = 10
    n_slices: int = 6
    size: int = 64
    pixel_mm: float = 2.5
    slice_mm: float = 10.0
    supersample: int = 4
    noise: float = 0.03  # Rician noise sigma, in units of the [0, 1] signal
    bias: float = 0.3  # peak-to-peak log amplitude of the bias field
    seed: int = 0


def _anatomy(rng: np.random.Generator) -> dict:
    """Per-acquisition anatomy parameters, in units of the field of view (FOV = 1)."""
    return {
        "body": (0.42 + rng.uniform(-0.03, 0.03), 0.31 + rng.uniform(-0.03, 0.03)),
        "heart": (0.04 + rng.uniform(-0.03, 0.03), 0.02 + rng.uniform(-0.03, 0.03)),
        "lv_r": 0.10 + rng.uniform(-0.015, 0.015),
        "wall": 0.04 + rng.uniform(-0.006, 0.008),
        "rv_r": 0.15 + rng.uniform(-0.015, 0.02),
        "rv_shift": 0.10 + rng.uniform(-0.01, 0.015),
        "angle": rng.uniform(-0.35, 0.35),
        "scar": rng.uniform(0, 2 * np.pi) if rng.random() < 0.7 else None,
    }


def _tissue_slice(a: dict, level: float, n: int) -> np.ndarray:
    """Tissue class map (n, n) of one axial slice; `level` 0 = base, 1 = apex."""
    c = (np.arange(n) + 0.5) / n - 0.5
    y, x = np.meshgrid(c, c, indexing="ij")
    tissue = np.full((n, n), AIR, dtype=np.uint8)
    bx, by = a["body"]
    body = (x / bx) ** 2 + (y / by) ** 2
    tissue[body <= 1.0] = FAT
    tissue[body <= 0.80] = MUSCLE
    for side in (-1, 1):  # lungs
        lung = ((x - side * 0.19) / 0.13) ** 2 + ((y + 0.02) / 0.19) ** 2
        tissue[lung <= 1.0] = LUNG
    liver = ((x + 0.16) / 0.17) ** 2 + ((y - 0.17 - 0.1 * level) / 0.10) ** 2
    tissue[liver <= 1.0] = LIVER
    # heart, rotated frame around its centre
    hx, hy = a["heart"]
    cos, sin = np.cos(a["angle"]), np.sin(a["angle"])
    u, v = cos * (x - hx) + sin * (y - hy), -sin * (x - hx) + cos * (y - hy)
    shrink = 1.0 - 0.55 * level
    lv_r, outer = a["lv_r"] * shrink, a["lv_r"] * shrink + a["wall"]
    r_lv = np.hypot(u * 1.08, v)
    if level < 0.8:  # RV crescent: a larger disc beside the LV, outside the myocardium
        rv_r = a["rv_r"] * (1.0 - 0.7 * level)
        rv = np.hypot(u + a["rv_shift"] * shrink + 0.02, v * 1.15) <= rv_r
        rv &= r_lv > outer + 0.012
        tissue[rv] = RV
    tissue[r_lv <= outer] = MYO
    if a["scar"] is not None:
        phi = np.arctan2(v, u)
        arc = np.abs(np.angle(np.exp(1j * (phi - a["scar"])))) < 0.5
        tissue[(r_lv <= outer) & (r_lv > lv_r + 0.3 * a["wall"]) & arc] = SCAR
    tissue[r_lv <= lv_r] = LV
    return tissue


def _block_mean(x: np.ndarray, k: int) -> np.ndarray:
    n = x.shape[-1] // k
    return x.reshape(*x.shape[:-2], n, k, n, k).mean(axis=(-3, -1))


def _bias_field(rng: np.random.Generator, n: int, amplitude: float) -> np.ndarray:
    """Smooth multiplicative field (n, n): exp of a random 2nd-order polynomial, peak-to-peak ~amplitude."""
    c = np.linspace(-1, 1, n)
    y, x = np.meshgrid(c, c, indexing="ij")
    terms = np.stack([x, y, x * y, x**2, y**2])
    field = np.tensordot(rng.normal(size=5), terms, axes=1)
    span = float(field.max() - field.min()) or 1.0
    return np.exp(amplitude * (field - field.mean()) / span)


def render_volume(spec: PhantomSpec, sequence: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One acquisition: (image (z, y, x) float32 in ~0..1000, label (z, y, x) uint8 with values 0..3)."""
    a = _anatomy(rng)
    k, n = spec.supersample, spec.size
    contrast = CONTRAST[sequence] * rng.uniform(0.9, 1.1, size=len(CONTRAST[sequence]))
    if sequence == "bSSFP":  # no scar enhancement in bSSFP
        contrast[SCAR] = contrast[MYO]
    images, labels = [], []
    levels = np.linspace(0.0, 1.0, spec.n_slices) + rng.uniform(-0.05, 0.05)
    for level in np.clip(levels, 0.0, 1.0):
        tissue = _tissue_slice(a, float(level), n * k)
        clean = _block_mean(contrast[tissue], k)  # partial volume
        onehot = _block_mean(np.eye(4)[_TISSUE_TO_LABEL[tissue]].transpose(2, 0, 1), k)
        labels.append(onehot.argmax(axis=0).astype(np.uint8))
        signal = clean * _bias_field(rng, n, spec.bias)
        noisy = np.hypot(signal + rng.normal(0, spec.noise, signal.shape), rng.normal(0, spec.noise, signal.shape))
        images.append(noisy * 1000.0)
    return np.stack(images).astype(np.float32), np.stack(labels)


def make_phantom(root: str | Path, spec: PhantomSpec = PhantomSpec()) -> Path:
    """Write the phantom in the MS-CMRSeg layout under `root` and return `root`.

    `root/<seq>/image_K.nii.gz` (float32, (z, y, x) = (n_slices, size, size)) and `label_K.nii.gz` (uint8) for
    seq in ("bSSFP", "LGE") and K = 1..n_patients. Spacing (pixel_mm, pixel_mm, slice_mm). Deterministic in `seed`.
    """
    root = Path(root)
    geometry = Geometry.default(3, (spec.pixel_mm, spec.pixel_mm, spec.slice_mm))
    for s, sequence in enumerate(SEQUENCES):
        for patient in range(1, spec.n_patients + 1):
            rng = np.random.default_rng([spec.seed, s, patient])
            image, label = render_volume(spec, sequence, rng)
            write_image(image, geometry, root / sequence / f"image_{patient}.nii.gz")
            write_image(label, geometry, root / sequence / f"label_{patient}.nii.gz")
    return root
