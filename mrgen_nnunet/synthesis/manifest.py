"""The source masks and the deterministic work manifest of a synthesis run.

A source is an nnU-Net raw *slice* dataset (id, name or folder) or a generator index JSONL whose every record is
labelled (a label-less record, e.g. an unlabelled target slice, is refused, never skipped or used). Every
labelled source slice becomes one `MaskItem` with its try seeds: seed of try t = sha256("{seed}:{case}:{t}"), so
the same inputs and seed give the same items, independent of order, sharding or batch size.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import Geometry, extract_slice, read_image, slice_geometry
from mrgen_nnunet.errors import MRGenError


@dataclass(frozen=True)
class SourceSlice:
    """One labelled source slice: `case` is unique (it already names the slice, e.g. `bSSFP001_z004`)."""

    case: str
    patient: str
    image_file: str
    label_file: str
    slice_index: int  # axial index for 3D files, 0 for 2D files

    def load(self) -> tuple[np.ndarray, np.ndarray, Geometry]:
        """((H, W) float32 image, (H, W) uint8 label map, 2D geometry of the slice)."""
        image, geometry = read_image(self.image_file)
        label, _ = read_image(self.label_file)
        if image.ndim == 3:
            geometry = slice_geometry(geometry, self.slice_index)
        image = extract_slice(image, self.slice_index).astype(np.float32)
        label = extract_slice(label, self.slice_index)
        if not np.isfinite(image).all():
            raise MRGenError("image has NaN/Inf values", self.image_file, "clean the image or drop this case")
        if label.shape != image.shape:
            raise MRGenError(f"label shape {label.shape} differs from image shape {image.shape}", self.label_file,
                             "image and label must share one grid")
        return image, label.astype(np.uint8), geometry


@dataclass(frozen=True)
class SourceSet:
    """The labelled slices of a source, its label map ({"background": 0, ...}) and its name (for ids)."""

    slices: list[SourceSlice]
    labels: dict[str, int]
    name: str


@dataclass(frozen=True)
class MaskItem:
    """One source mask and the seeds of its tries (`seeds[t]` for try t)."""

    index: int
    source: SourceSlice
    seeds: tuple[int, ...]


def item_seed(seed: int, case: str, try_index: int) -> int:
    """A 63-bit seed that depends only on (run seed, source case, try)."""
    digest = hashlib.sha256(f"{seed}:{case}:{try_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def build_manifest(source: SourceSet, max_tries: int, seed: int) -> list[MaskItem]:
    """One MaskItem per source slice, in case-id order."""
    slices = sorted(source.slices, key=lambda s: s.case)
    return [MaskItem(i, s, tuple(item_seed(seed, s.case, t) for t in range(max_tries))) for i, s in enumerate(slices)]


def load_sources(source: str | Path, raw_root: str | Path | None) -> SourceSet:
    """Resolve `source`: an index `.jsonl`, a dataset folder, or a dataset id/name inside `raw_root`."""
    from mrgen_nnunet.data.nnunet_raw import find_dataset

    path = Path(source)
    if path.suffix == ".jsonl":
        return _from_index(path)
    if path.is_dir():
        return _from_raw_dataset(path)
    if raw_root is None:
        raise MRGenError(f"source {source!r} is neither an index nor a folder", "--source",
                         "set nnUNet_raw (or --raw) to resolve a dataset id, or pass the dataset folder")
    return _from_raw_dataset(find_dataset(raw_root, str(source)))


def _from_index(path: Path) -> SourceSet:
    from mrgen_nnunet.data.records import read_index

    records = read_index(path)
    unlabelled = [r for r in records if not r.has_label]
    if unlabelled:  # target images (e.g. `convert ... --images-only`) are never synthesis sources
        raise MRGenError(f"source index has {len(unlabelled)} label-less record(s) of {len(records)}, e.g. "
                         f"{unlabelled[0].case_id} slice {unlabelled[0].slice_index} ({unlabelled[0].modality})", path,
                         "synthesis needs label maps: pass the labelled sequence's own index (convert ... --labels "
                         "--index), not the generator index with unlabelled target images")
    labels = records[0].labels
    for r in records:
        if r.labels != labels:
            raise MRGenError(f"records disagree on the label map ({r.case_id}: {r.labels} vs {labels})", path,
                             "use one label map per index")
    slices = [SourceSlice(f"{r.case_id}_z{r.slice_index:03d}", r.patient_id, r.image_file, r.label_file,
                          r.slice_index) for r in records]
    return SourceSet(slices, dict(labels), path.stem)


def _from_raw_dataset(folder: Path) -> SourceSet:
    from mrgen_nnunet.data.nnunet_raw import FILE_ENDING, list_cases, read_dataset_json

    meta = read_dataset_json(folder)
    labels = {k: int(v) for k, v in meta.get("labels", {}).items()}
    if len(labels) < 2:
        raise MRGenError("source dataset has no organ labels in dataset.json", folder / "dataset.json",
                         "synthesis needs a labelled source dataset")
    patients = meta.get("mrgen", {}).get("patients", {})
    slices = []
    for case in list_cases(folder, "Tr"):
        label_file = folder / "labelsTr" / f"{case}{FILE_ENDING}"
        if not label_file.is_file():
            raise MRGenError(f"case {case} has no label file", label_file,
                             "synthesis needs labels for every source case (labelsTr)")
        slices.append(SourceSlice(case, str(patients.get(case, case)),
                                  str(folder / "imagesTr" / f"{case}_0000{FILE_ENDING}"), str(label_file), 0))
    if not slices:
        raise MRGenError("source dataset has no training cases", folder / "imagesTr",
                         "convert a labelled dataset first (mrgen-nnunet convert ... --as-slices)")
    if meta.get("mrgen", {}).get("kind") == "volumes":
        raise MRGenError("source dataset holds 3D volumes, synthesis needs 2D slices", folder,
                         "convert the source with --as-slices, or pass its generator index (.jsonl)")
    return SourceSet(slices, labels, folder.name)
