"""A tiny nnU-Net slice dataset with an easy label (a bright square), some cases marked synthetic, and a 3D test set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mrgen_nnunet.data.io import Geometry, write_image

SIZE = 32


def square_case(rng: np.random.Generator, shape: tuple[int, ...], bright: float) -> tuple[np.ndarray, np.ndarray]:
    """(image float32, label uint8) of `shape` ((y, x) or (z, y, x)): noise ~100 plus a square of value `bright`."""
    image = rng.normal(100.0, 10.0, shape).astype(np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    for index in np.ndindex(shape[:-2]):
        side = int(rng.integers(8, 14))
        y, x = (int(v) for v in rng.integers(2, SIZE - side - 2, size=2))
        label[index + (slice(y, y + side), slice(x, x + side))] = 1
    image[label == 1] += bright
    return image, label


def write_tiny_dataset(raw: Path, dataset_id: int = 501, n_patients: int = 5, real_per_patient: int = 3,
                       syn_per_patient: int = 2, ratio: float | None = 1.0, mrgen_key: bool = True,
                       n_test: int = 2, seed: int = 0) -> Path:
    """Write `Dataset{id}_Tiny` under `raw`: 2D slice cases (32x32, spacing 1.25 mm) + 3D test volumes (4x32x32).

    Real case `P{p}_z{k}`, synthetic `syn_P{p}_z{k}_k0` (same patient id as its source); test `T{t:03d}` in
    imagesTs/labelsTs. Returns the dataset folder.
    """
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    rng = np.random.default_rng(seed)
    folder = raw / f"Dataset{dataset_id:03d}_Tiny"
    g2 = Geometry.default(2, (1.25, 1.25))
    patients, synthetic = {}, []
    for p in range(n_patients):
        for k in range(real_per_patient + syn_per_patient):
            real = k < real_per_patient
            case = f"P{p}_z{k}" if real else f"syn_P{p}_z{k - real_per_patient}_k0"
            image, label = square_case(rng, (SIZE, SIZE), bright=400.0 if real else 300.0)
            write_image(image, g2, folder / "imagesTr" / f"{case}_0000.nii.gz")
            write_image(label, g2, folder / "labelsTr" / f"{case}.nii.gz")
            patients[case] = f"tiny/{p:03d}"
            if not real:
                synthetic.append(case)
    g3 = Geometry.default(3, (1.25, 1.25, 5.0))
    for t in range(n_test):
        image, label = square_case(rng, (4, SIZE, SIZE), bright=400.0)
        write_image(image, g3, folder / "imagesTs" / f"T{t:03d}_0000.nii.gz")
        write_image(label, g3, folder / "labelsTs" / f"T{t:03d}.nii.gz")
    generate_dataset_json(str(folder), {0: "LGE"}, {"background": 0, "square": 1}, len(patients), ".nii.gz",
                          dataset_name=folder.name)
    if mrgen_key:
        meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
        meta["mrgen"] = {"modality": "LGE Cardiac MRI", "kind": "slices", "patients": patients,
                         "synthetic_cases": synthetic, "real_to_synthetic_ratio": ratio, "provenance": None}
        (folder / "dataset.json").write_text(json.dumps(meta, indent=1))
    return folder


@pytest.fixture(scope="session")
def tiny_dataset_writer():
    """`write_tiny_dataset` as a fixture (test folders here are not packages)."""
    return write_tiny_dataset
