"""Slices for generator evaluation, read from a plain image folder or an nnU-Net raw dataset folder.

Accepted inputs (`--real`, `--synthetic`, `--images`):
- an nnU-Net raw dataset folder (`dataset.json` + `imagesTr/CASE_0000.nii.gz`, labels in `labelsTr/CASE.nii.gz`);
- a plain folder of 2D or 3D images (NIfTI, MHA/NRRD, PNG, JPEG). A file's label, when present, is the file with
  the same name in a `labels/` or `labelsTr/` subfolder, or the sibling whose name starts with `label` instead of
  `image` (MS-CMRSeg's `image_K.nii.gz` / `label_K.nii.gz`).

Every axial slice becomes one `EvalSlice`, normalised with `normalize_slice` (per-slice min–max to [-1, 1],
square pad, resize). With a label, only slices with foreground are kept (the slices a generator is asked for);
without one, every non-constant slice is kept.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import read_image
from mrgen_nnunet.data.normalize import normalize_label, normalize_slice
from mrgen_nnunet.errors import MRGenError

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".png", ".jpg", ".jpeg")


@dataclass
class EvalSlice:
    """One normalised slice: `image` (N, N) float32 in [-1, 1], `label` (N, N) uint8 or None."""

    name: str  # "<file stem>" for 2D files, "<file stem>_z<k>" for slices of 3D files
    image: np.ndarray
    label: np.ndarray | None


@dataclass
class EvalSliceSet:
    """All slices of one input plus its label names (name -> value, background included; {} without labels)."""

    source: Path
    slices: list[EvalSlice]
    labels: dict[str, int]

    def images(self) -> np.ndarray:
        """(B, N, N) float32 in [-1, 1]."""
        return np.stack([s.image for s in self.slices])

    @property
    def has_labels(self) -> bool:
        return all(s.label is not None for s in self.slices)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _is_image(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(IMAGE_SUFFIXES) and not path.name.startswith(".")


def _pairs_from_dataset(folder: Path) -> tuple[list[tuple[Path, Path | None]], dict[str, int]]:
    try:
        meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MRGenError(f"dataset.json is not valid JSON: {exc.msg}", folder / "dataset.json",
                         "fix or regenerate the dataset") from None
    labels = {str(k): int(v) for k, v in meta.get("labels", {}).items() if not isinstance(v, list)}
    ending = meta.get("file_ending", ".nii.gz")
    pairs = []
    for image in sorted((folder / "imagesTr").glob(f"*_0000{ending}")):
        case = image.name[: -len(f"_0000{ending}")]
        label = folder / "labelsTr" / f"{case}{ending}"
        pairs.append((image, label if label.is_file() else None))
    return pairs, labels


def _pairs_from_folder(folder: Path) -> list[tuple[Path, Path | None]]:
    pairs = []
    for image in sorted(p for p in folder.iterdir() if _is_image(p)):
        if image.name.lower().startswith("label"):
            continue
        candidates = [folder / "labels" / image.name, folder / "labelsTr" / image.name]
        if image.name.lower().startswith("image"):
            candidates.append(folder / ("label" + image.name[len("image"):]))
        label = next((c for c in candidates if c.is_file()), None)
        pairs.append((image, label))
    return pairs


def load_eval_slices(path: str | Path, resolution: int, max_slices: int | None = None, seed: int = 0) -> EvalSliceSet:
    """Read every usable axial slice of `path` (folder or nnU-Net raw dataset), normalised to (N, N) in [-1, 1].

    `max_slices` keeps a random subset (fixed `seed`) so large sets stay cheap. Labels are kept only when every
    image has one. Raises MRGenError for a missing/empty folder or an image/label shape mismatch.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise MRGenError("input folder not found", folder, "pass a folder of images or an nnU-Net raw dataset folder")
    if (folder / "dataset.json").is_file() and (folder / "imagesTr").is_dir():
        pairs, labels = _pairs_from_dataset(folder)
    else:
        pairs, labels = _pairs_from_folder(folder), {}
    if not pairs:
        raise MRGenError("no images found", folder,
                         f"put {', '.join(IMAGE_SUFFIXES)} files there, or pass an nnU-Net raw dataset folder")
    use_labels = all(label is not None for _, label in pairs)
    slices: list[EvalSlice] = []
    for image_path, label_path in pairs:
        volume, _ = read_image(image_path)
        label_volume = read_image(label_path)[0] if use_labels else None
        if label_volume is not None and label_volume.shape != volume.shape:
            raise MRGenError(f"label shape {label_volume.shape} differs from image shape {volume.shape}",
                             label_path, "image and label must share one grid")
        if volume.ndim == 2:
            volume = volume[None]
            label_volume = None if label_volume is None else label_volume[None]
        for k in range(volume.shape[0]):
            image = volume[k].astype(np.float64)
            if not np.isfinite(image).all():
                raise MRGenError("image has NaN/Inf values", image_path, "clean the image or remove it")
            label = None if label_volume is None else np.rint(label_volume[k]).astype(np.uint8)
            if label is not None and not label.any():
                continue
            if label is None and image.max() <= image.min():
                continue
            normed, info = normalize_slice(image, resolution)
            name = _stem(image_path) if volume.shape[0] == 1 else f"{_stem(image_path)}_z{k:03d}"
            slices.append(EvalSlice(name, normed, None if label is None else normalize_label(label, info)))
    if not slices:
        raise MRGenError("no usable slices (all empty or constant)", folder, "check the images and labels")
    if max_slices is not None and len(slices) > max_slices:
        keep = np.sort(np.random.default_rng(seed).choice(len(slices), size=max_slices, replace=False))
        slices = [slices[i] for i in keep]
    if use_labels and not labels:
        values = sorted({int(v) for s in slices for v in np.unique(s.label)} - {0})
        labels = {"background": 0, **{f"label_{v}": v for v in values}}
    return EvalSliceSet(folder, slices, labels if use_labels else {})
