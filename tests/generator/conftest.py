"""A synthetic two-sequence index: 'bSSFP' slices with labels, 'LGE' slices without, 2D NIfTI in tmp_path."""

from __future__ import annotations

import numpy as np
import pytest

from mrgen_nnunet.data.io import Geometry, write_image
from mrgen_nnunet.data.records import SliceRecord, write_index

LABELS = {"background": 0, "myocardium": 1, "left ventricle": 2, "right ventricle": 3}


def _phantom(rng: np.random.Generator, size: int, bright_blood: bool) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size]
    cy, cx = size / 2 + rng.uniform(-3, 3), size / 2 + rng.uniform(-3, 3)
    r = np.hypot(yy - cy, xx - cx)
    label = np.zeros((size, size), np.uint8)
    label[r < size * 0.25] = 1
    label[r < size * 0.17] = 2
    label[np.hypot(yy - cy, xx - cx - size * 0.3) < size * 0.12] = 3
    blood, myo = (900.0, 200.0) if bright_blood else (300.0, 100.0)
    image = np.full((size, size), 50.0) + rng.normal(0, 10, (size, size))
    image[label == 1] = myo
    image[(label == 2) | (label == 3)] = blood
    return image.astype(np.float32), label


def make_index(folder, n_per_modality: int = 4, size: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    records = []
    for modality, prefix, labelled in (("bSSFP Cardiac MRI", "bSSFP", True), ("LGE Cardiac MRI", "LGE", False)):
        for k in range(n_per_modality):
            image, label = _phantom(rng, size, bright_blood=labelled)
            geom = Geometry.default(2, (1.25, 1.25))
            write_image(image, geom, folder / f"{prefix}{k:03d}.nii.gz")
            label_file = None
            if labelled:
                write_image(label, geom, folder / f"{prefix}{k:03d}_seg.nii.gz")
                label_file = f"{prefix}{k:03d}_seg.nii.gz"
            organs = [n for n, v in LABELS.items() if v and (label == v).any()]
            records.append(SliceRecord(f"{prefix}{k:03d}", f"{prefix}/{k:03d}", 0, f"{prefix}{k:03d}.nii.gz", modality,
                                       label_file, f"{prefix} attributes", "Heart", organs, dict(LABELS),
                                       [1.25, 1.25], f"MSCMR_{prefix}"))
    return write_index(records, folder / "index.jsonl")


@pytest.fixture
def synthetic_index(tmp_path):
    return make_index(tmp_path)


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory):
    """A tiny generator trained 3 steps per stage at 32 px on the synthetic index (shared by a test module)."""
    from mrgen_nnunet.generator.train import TrainOptions, train_generator

    root = tmp_path_factory.mktemp("gen")
    index = make_index(root)
    train_generator(index, root / "gen", preset="tiny", target_modality="LGE", steps=3, resolution=32,
                    options=TrainOptions(batch_size=2, quiet=True, seed=0))
    return root / "gen"
