"""Largest-connected-component post-processing: each heart structure (or organ) is one connected object, so
everything of a label outside its largest component is a false positive.

`largest_components` works on a 2D slice (4-connected) or a 3D volume (6-connected: face neighbours; slices are
connected through the through-plane axis). The pseudo-label rules use it per slice; `postprocess_folder` applies it
to predicted volumes before they are scored (`mrgen-nnunet evaluate --largest-component`), as nnU-Net's own
`nnUNetv2_apply_postprocessing` does with its "keep the largest component" rule.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from scipy import ndimage

from mrgen_nnunet.data.io import read_image, write_image
from mrgen_nnunet.errors import MRGenError


def largest_components(label: np.ndarray, values: list[int]) -> tuple[np.ndarray, dict[int, float]]:
    """Keep the largest connected component of each value (others -> 0). label: integer map (H, W) or (Z, H, W).
    Returns (cleaned label, value -> share of that value's pixels in its largest component, in (0, 1])."""
    out, shares = label.copy(), {}
    for v in values:
        mask = label == v
        if not mask.any():
            continue
        components, _ = ndimage.label(mask)
        sizes = np.bincount(components.ravel())[1:]
        biggest = int(np.argmax(sizes)) + 1
        shares[v] = float(sizes.max() / sizes.sum())
        out[mask & (components != biggest)] = 0
    return out, shares


def postprocess_folder(pred_dir: str | os.PathLike, out_dir: str | os.PathLike, values: list[int]) -> Path:
    """Every CASE.nii.gz (or .nii/.mha/.nrrd) of `pred_dir` with only the largest component of each of `values`,
    written to `out_dir` on the same grid. Returns `out_dir`."""
    from mrgen_nnunet.evaluation.metrics import _case_files

    pred_dir, out_dir = Path(pred_dir), Path(out_dir)
    files = list(_case_files(pred_dir).values())
    if not files:
        raise MRGenError("no predicted volumes to post-process", pred_dir, "point --pred at nnUNetv2_predict output")
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in files:
        array, geometry = read_image(f)
        cleaned, _ = largest_components(array, values)
        write_image(cleaned.astype(array.dtype), geometry, out_dir / f.name)
    return out_dir
