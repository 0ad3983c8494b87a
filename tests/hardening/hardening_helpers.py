"""Shared pieces of the hardening tests: a tiny source slice dataset and file-tree hashes (the generator index,
ring phantom and tree_bytes are the fixtures plugin's, re-exported)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from mrgen_fixtures import LABELS, make_index, ring, tree_bytes  # noqa: F401 (re-exported from the plugin)

from mrgen_nnunet.data.io import Geometry, write_image
from mrgen_nnunet.data.nnunet_raw import mrgen_key, write_dataset_json


def make_source(raw: Path, n_patients: int = 2, slices: int = 2, shape=(36, 40), dataset_id: int = 101) -> Path:
    """DatasetNNN_SRC: `n_patients * slices` labelled 2D bSSFP slices (float32 ≈ 0..900)."""
    folder = raw / f"Dataset{dataset_id:03d}_SRC"
    rng = np.random.default_rng(0)
    patients = {}
    for p in range(1, n_patients + 1):
        for z in range(slices):
            case = f"bSSFP{p:03d}_z{z:03d}"
            label = ring(shape, z, p)
            image = (100 + 700 * (label == 2) + 100 * (label == 1) + 10 * rng.standard_normal(shape)).astype(np.float32)
            geom = Geometry((1.25, 1.25), (float(p), float(z)), (1.0, 0.0, 0.0, 1.0))
            write_image(image, geom, folder / "imagesTr" / f"{case}_0000.nii.gz")
            write_image(label, geom, folder / "labelsTr" / f"{case}.nii.gz")
            patients[case] = f"bSSFP/{p:03d}"
    write_dataset_json(folder, LABELS, {"0": "bSSFP"}, len(patients),
                       {"mrgen": mrgen_key("bSSFP Cardiac MRI", "slices", patients)})
    return folder


def tree_hash(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `root` (symlinks by target; empty folders ignored); {} when absent."""
    if not root.exists():
        return {}
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link:" + str(p.readlink())
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
