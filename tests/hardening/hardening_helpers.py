"""Shared pieces of the hardening tests: a tiny source slice dataset, a generator index, the CLI runner, hashes."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import Geometry, write_image
from mrgen_nnunet.data.nnunet_raw import mrgen_key, write_dataset_json
from mrgen_nnunet.data.records import SliceRecord, write_index

LABELS = {"background": 0, "myocardium": 1, "left ventricle": 2}


def ring(shape, dy=0, dx=0) -> np.ndarray:
    """(H, W) uint8: left ventricle (2) disc inside a myocardium (1) ring."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r = np.hypot(yy - shape[0] / 2 - dy, xx - shape[1] / 2 - dx)
    return np.where(r < 5, 2, np.where(r < 9, 1, 0)).astype(np.uint8)


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


def make_index(folder: Path, n: int = 2, size: int = 32) -> Path:
    """`n` labelled bSSFP and `n` unlabelled LGE slices (size × size) and their index.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for k in range(n):
        label = ring((size, size), k, 0)
        for prefix, modality, blood in (("bSSFP", "bSSFP Cardiac MRI", 900.0), ("LGE", "LGE Cardiac MRI", 300.0)):
            image = np.where(label == 2, blood, np.where(label == 1, 150.0, 50.0)).astype(np.float32)
            write_image(image, Geometry.default(2, (1.25, 1.25)), folder / f"{prefix}{k}.nii.gz")
            label_file = None
            if prefix == "bSSFP":
                write_image(label, Geometry.default(2, (1.25, 1.25)), folder / f"{prefix}{k}_seg.nii.gz")
                label_file = f"{prefix}{k}_seg.nii.gz"
            records.append(SliceRecord(f"{prefix}{k}", f"{prefix}/{k}", 0, f"{prefix}{k}.nii.gz", modality, label_file,
                                       "", "Heart", ["myocardium", "left ventricle"], dict(LABELS), [1.25, 1.25]))
    return write_index(records, folder / "index.jsonl")


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


def tree_bytes(folder: Path, skip=("summary.json",)) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in skip}
