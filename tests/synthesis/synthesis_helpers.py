"""Helpers for the synthesis tests: a tiny source slice dataset and a stand-in generator that follows
CONTRACTS §3 exactly. A module of its own (not conftest) so that test files can import it by a unique name."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from mrgen_fixtures import LABELS, tree_bytes  # noqa: F401 (re-exported: one copy, in the fixtures plugin)

from mrgen_nnunet.data.io import Geometry, write_image
from mrgen_nnunet.data.nnunet_raw import mrgen_key, write_dataset_json


def make_source_dataset(raw: Path, n_patients: int = 3, slices: int = 2, shape=(40, 48)) -> Path:
    """Dataset101_SRC: `n_patients * slices` 2D slices (H, W) = shape with a ring (1) around a disc (2);
    the first slice of patient 1 is empty (skipped for foreground)."""
    folder = raw / "Dataset101_SRC"
    patients = {}
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    rng = np.random.default_rng(0)
    for p in range(1, n_patients + 1):
        for z in range(slices):
            case = f"bSSFP{p:03d}_z{z:03d}"
            r = np.hypot(yy - shape[0] / 2 - z, xx - shape[1] / 2 + p)
            label = np.where(r < 6 + p, 2, np.where(r < 10 + p, 1, 0)).astype(np.uint8)
            if p == 1 and z == 0:
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
class StandInConfig:
    resolution: int = 32
    labels: dict = field(default_factory=lambda: dict(LABELS))
    modalities: dict = field(default_factory=dict)


@dataclass
class StandInOutput:
    images: torch.Tensor
    latents: torch.Tensor


class StandInPipeline:
    """Contract §3 stand-in: image = mask-shaped contrast + seed noise, so a sample depends only on its seed."""

    def __init__(self):
        self.config = StandInConfig()
        self.calls = []

    def encode_masks(self, label_maps: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(label_maps.astype(np.float32) / 2.0 * 2 - 1)[:, None]

    def __call__(self, prompt, mask, num_inference_steps=50, guidance_scale=7.0, generator=None, scheduler="ddim"):
        self.calls.append((list(prompt), tuple(mask.shape), num_inference_steps, scheduler))
        noise = torch.stack([torch.randn(mask.shape[1:], generator=g) for g in generator])
        images = (0.5 * mask + 0.3 * noise).clamp(-1, 1)
        return StandInOutput(images=images, latents=noise)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
