"""A synthetic MS-CMRSeg miniature for the convert fault test (SRC/LGE/image_K.nii.gz + label_K.nii.gz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk


def write_mscmrseg(root: Path, patients=range(1, 9), shape=(8, 96, 96)) -> Path:
    rng = np.random.default_rng(0)
    folder = root / "LGE"
    folder.mkdir(parents=True, exist_ok=True)
    for k in patients:
        label = np.zeros(shape, np.uint8)
        for v in (1, 2, 3):
            y, x = rng.integers(10, shape[1] - 20, size=2)
            label[1:, y: y + 8, x: x + 8] = v
        image = (rng.random(shape) * 1000).astype(np.float64)
        for arr, name in ((image, f"image_{k}.nii.gz"), (label, f"label_{k}.nii.gz")):
            img = sitk.GetImageFromArray(arr)
            img.SetSpacing((1.25, 1.25, 5.0))
            sitk.WriteImage(img, str(folder / name))
    return root
