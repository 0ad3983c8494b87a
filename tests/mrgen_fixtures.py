"""The suite's shared fixtures and builders, one copy each (a pytest plugin: tests/conftest.py names it in
`pytest_plugins`, so every test folder gets its fixtures by name; plain builders are imported from this module).

- `tiny_generator`: the real tiny generator, trained once per session (every generator, synthesis and hardening
  test uses this one; a test that changes it works on a copy).
- `make_index` / `synthetic_index`: a two-sequence generator index (labelled bSSFP rings, unlabelled LGE rings).
- `write_tiny_dataset` / `tiny_dataset_writer`: a tiny nnU-Net slice dataset with an easy label, for nnU-Net runs.
- `make_source_dataset`: a labelled bSSFP slice dataset of rings (the source of every synthesis test);
  `StandInPipeline`: a GeneratorPipeline whose sample depends only on its seed (no model).
- `cli`: `mrgen-nnunet ARGS` in-process -> (exit code, stderr lines); `tree_bytes` for byte-identity checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from mrgen_nnunet.data.io import Geometry, write_image
from mrgen_nnunet.data.nnunet_raw import mrgen_key, write_dataset_json
from mrgen_nnunet.data.records import SliceRecord, write_index
from mrgen_nnunet.generator.folder import GeneratorConfig

LABELS = {"background": 0, "myocardium": 1, "left ventricle": 2}
TINY_STEPS = 3  # training steps per stage of the session's tiny generator
TINY_SIZE = 32  # nnU-Net test slices of write_tiny_dataset are TINY_SIZE × TINY_SIZE


def ring(shape: tuple[int, int], dy: float = 0, dx: float = 0) -> np.ndarray:
    """(H, W) uint8: a left ventricle (2) disc of radius 5 inside a myocardium (1) ring of radius 9, centred at the
    middle + (dy, dx)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    r = np.hypot(yy - shape[0] / 2 - dy, xx - shape[1] / 2 - dx)
    return np.where(r < 5, 2, np.where(r < 9, 1, 0)).astype(np.uint8)


def make_index(folder: Path, n: int = 2, size: int = 32) -> Path:
    """`n` labelled bSSFP and `n` unlabelled LGE slices (size × size, the k-th ring shifted by k) as 2D NIfTI in
    `folder`, and their generator index `folder/index.jsonl` (labels LABELS). Returns the index path."""
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


@pytest.fixture
def synthetic_index(tmp_path) -> Path:
    """A 4+4-slice generator index (40 px) under tmp_path/index."""
    return make_index(tmp_path / "index", n=4, size=40)


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory) -> Path:
    """The real tiny generator (tiny preset, 32 px, TINY_STEPS steps per stage, seed 0) on make_index's 2+2 slices,
    target LGE, labels LABELS: trained once for the whole session. Never modify it in place (copy it first)."""
    from mrgen_nnunet.generator.train import TrainOptions, train_generator

    root = tmp_path_factory.mktemp("tiny_generator")
    train_generator(make_index(root / "index"), root / "gen", preset="tiny", target_modality="LGE",
                    steps=TINY_STEPS, resolution=32, options=TrainOptions(batch_size=2, quiet=True, seed=0))
    return root / "gen"


def make_source_dataset(raw: Path, n_patients: int = 3, slices: int = 2, shape=(40, 48), dataset_id: int = 101,
                        empty_first: bool = True) -> Path:
    """DatasetNNN_SRC: `n_patients * slices` labelled 2D bSSFP slices (H, W) = shape, float32 ~100..600: a left
    ventricle disc (2) in a myocardium ring (1), growing with the patient, shifted with the slice; with
    `empty_first` the first slice of patient 1 has no foreground (synthesis skips it)."""
    folder = raw / f"Dataset{dataset_id:03d}_SRC"
    patients = {}
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    rng = np.random.default_rng(0)
    for p in range(1, n_patients + 1):
        for z in range(slices):
            case = f"bSSFP{p:03d}_z{z:03d}"
            r = np.hypot(yy - shape[0] / 2 - z, xx - shape[1] / 2 + p)
            label = np.where(r < 6 + p, 2, np.where(r < 10 + p, 1, 0)).astype(np.uint8)
            if empty_first and p == 1 and z == 0:
                label[:] = 0
            image = (100 + 500 * (label == 2) + 200 * (label == 1) + 20 * rng.standard_normal(shape)).astype(np.float32)
            geom = Geometry((1.25, 1.4), (10.0 * p, -5.0 + z), (1.0, 0.0, 0.0, 1.0))
            write_image(image, geom, folder / "imagesTr" / f"{case}_0000.nii.gz")
            write_image(label, geom, folder / "labelsTr" / f"{case}.nii.gz")
            patients[case] = f"bSSFP/{p:03d}"
    write_dataset_json(folder, LABELS, {"0": "bSSFP"}, len(patients),
                       {"mrgen": mrgen_key("bSSFP Cardiac MRI", "slices", patients)})
    return folder


@dataclass
class StandInOutput:
    images: torch.Tensor
    latents: torch.Tensor


class StandInPipeline:
    """A GeneratorPipeline (generator/protocol.py) without a model: image = mask-shaped contrast + seed noise, so a
    sample depends only on its seed; `calls` records (prompts, mask shape, steps, scheduler) of every call."""

    def __init__(self):
        self.config = GeneratorConfig(resolution=32, labels=dict(LABELS))
        self.calls = []

    def encode_masks(self, label_maps: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(label_maps.astype(np.float32) / 2.0 * 2 - 1)[:, None]

    def __call__(self, prompt, mask, num_inference_steps=50, guidance_scale=7.0, generator=None, scheduler="ddim"):
        self.calls.append((list(prompt), tuple(mask.shape), num_inference_steps, scheduler))
        noise = torch.stack([torch.randn(mask.shape[1:], generator=g) for g in generator])
        images = (0.5 * mask + 0.3 * noise).clamp(-1, 1)
        return StandInOutput(images=images, latents=noise)


def square_case(rng: np.random.Generator, shape: tuple[int, ...], bright: float) -> tuple[np.ndarray, np.ndarray]:
    """(image float32, label uint8) of `shape` ((y, x) or (z, y, x)): noise ~100 plus a square of value `bright`."""
    image = rng.normal(100.0, 10.0, shape).astype(np.float32)
    label = np.zeros(shape, dtype=np.uint8)
    for index in np.ndindex(shape[:-2]):
        side = int(rng.integers(8, 14))
        y, x = (int(v) for v in rng.integers(2, TINY_SIZE - side - 2, size=2))
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
            image, label = square_case(rng, (TINY_SIZE, TINY_SIZE), bright=400.0 if real else 300.0)
            write_image(image, g2, folder / "imagesTr" / f"{case}_0000.nii.gz")
            write_image(label, g2, folder / "labelsTr" / f"{case}.nii.gz")
            patients[case] = f"tiny/{p:03d}"
            if not real:
                synthetic.append(case)
    g3 = Geometry.default(3, (1.25, 1.25, 5.0))
    for t in range(n_test):
        image, label = square_case(rng, (4, TINY_SIZE, TINY_SIZE), bright=400.0)
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
    """`write_tiny_dataset` as a fixture."""
    return write_tiny_dataset


@pytest.fixture
def cli(capsys):
    """run(*args) -> (exit code, non-blank stderr lines) of `mrgen-nnunet ARGS` run in-process; each call sees only
    its own output."""

    from mrgen_nnunet.cli.main import main

    def run(*args) -> tuple[int, list[str]]:
        capsys.readouterr()
        rc = main([str(a) for a in args])
        return rc, [line for line in capsys.readouterr().err.splitlines() if line.strip()]

    return run


def tree_bytes(folder: Path, skip=("summary.json",)) -> dict[str, bytes]:
    """{relative path: bytes} of every file under `folder` but `skip` (summary.json holds timings)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in skip}
