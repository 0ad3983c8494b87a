"""Training slices from the generator index, normalised once and held in memory.

`SliceSet.images` (M, N, N) float32 in [-1, 1]; `label_maps` (M, N, N) uint8 (zeros where a slice has no label);
`has_label` (M,) bool; `prompts` MRGen-template strings; `modalities` modality keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from rich.progress import track

from mrgen_nnunet.data.io import extract_slice, read_image
from mrgen_nnunet.data.normalize import normalize_label, normalize_slice
from mrgen_nnunet.data.prompts import build_prompt
from mrgen_nnunet.data.records import SliceRecord, load_slice, read_index
from mrgen_nnunet.errors import MRGenError


@dataclass
class SliceSet:
    images: np.ndarray
    label_maps: np.ndarray
    has_label: np.ndarray
    prompts: list[str]
    modalities: list[str]
    labels: dict[str, int]  # union of the records' label maps
    records: list[SliceRecord]

    def __len__(self) -> int:
        return len(self.prompts)

    def select(self, mask: np.ndarray) -> np.ndarray:
        """Indices where the boolean mask holds."""
        return np.flatnonzero(mask)


def record_prompt(record: SliceRecord) -> str:
    return build_prompt(record.modality, record.attributes, record.region, record.organs)


def load_slice_set(index_path: str | os.PathLike, resolution: int, quiet: bool = False) -> SliceSet:
    """Read, normalise and stack every slice of the index (progress bar unless `quiet`)."""
    records = read_index(index_path)
    images, maps, has = [], [], []
    labels: dict[str, int] = {}
    volumes: dict[str, np.ndarray] = {}  # each 3D file is read once, not once per slice

    def cached(path: str) -> np.ndarray:
        if path not in volumes:
            volumes[path] = read_image(path)[0]
        return volumes[path]

    for rec in track(records, description="loading slices", disable=quiet):
        if rec.slice_index or cached(rec.image_file).ndim == 3:
            image = extract_slice(cached(rec.image_file), rec.slice_index).astype(np.float32)
            label = None if rec.label_file is None else extract_slice(cached(rec.label_file), rec.slice_index)
            if label is not None and label.shape != image.shape:
                raise MRGenError(f"label shape {label.shape} differs from image shape {image.shape}",
                                 rec.label_file, "image and label must share one grid")
        else:
            image, label = load_slice(rec)
        x, info = normalize_slice(image, resolution)
        images.append(x)
        maps.append(normalize_label(label, info) if label is not None else np.zeros_like(x, dtype=np.uint8))
        has.append(label is not None)
        for name, value in rec.labels.items():
            if labels.setdefault(name, value) != value:
                raise MRGenError(f"label {name!r} has values {labels[name]} and {value} in one index",
                                 index_path, "use one label map per generator")
    labels.setdefault("background", 0)
    return SliceSet(np.stack(images), np.stack(maps), np.array(has), [record_prompt(r) for r in records],
                    [r.modality for r in records], dict(sorted(labels.items(), key=lambda kv: kv[1])), records)


def resolve_target(name: str, modalities: list[str]) -> str:
    """A modality key of the index: exact key, else through the alias table (`LGE` -> "LGE Cardiac MRI")."""
    if name in modalities:
        return name
    from mrgen_nnunet.data.prompts import resolve_modality

    key = resolve_modality(name).key
    if key not in modalities:
        raise MRGenError(f"no slices of modality {key!r} in the index", "--target",
                         f"the index has {', '.join(sorted(set(modalities)))}")
    return key
