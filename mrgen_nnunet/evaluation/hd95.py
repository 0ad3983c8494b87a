"""Spacing-aware 95th-percentile Hausdorff distance (mm) with scipy distance transforms.

Why not MONAI: a heavy extra dependency for ~20 lines. The definition follows MONAI's
`compute_hausdorff_distance(percentile=95)`: surface voxels of each mask (the mask minus its binary erosion,
scipy's default cross-shaped structuring element, as MONAI's scipy path), the distance of every surface voxel of one
mask to the other mask's surface by an exact Euclidean distance transform with `sampling=spacing` (mm), the 95th
percentile per direction, and the larger of the two directions.
"""

from __future__ import annotations

import numpy as np


def _surface(mask: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_erosion

    return mask & ~binary_erosion(mask, border_value=0)


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: tuple[float, ...]) -> float:
    """HD95 in mm between boolean masks `pred` and `ref` (same shape, e.g. (z, y, x)), `spacing` in array order.

    Returns NaN when either mask is empty (undefined; excluded from means like nnU-Net's NaN Dice), 0.0 when both
    masks are identical.
    """
    from scipy.ndimage import distance_transform_edt

    pred, ref = np.asarray(pred, dtype=bool), np.asarray(ref, dtype=bool)
    if not pred.any() or not ref.any():
        return float("nan")
    s_pred, s_ref = _surface(pred), _surface(ref)
    to_ref = distance_transform_edt(~s_ref, sampling=spacing)
    to_pred = distance_transform_edt(~s_pred, sampling=spacing)
    return float(max(np.percentile(to_ref[s_pred], 95), np.percentile(to_pred[s_ref], 95)))
