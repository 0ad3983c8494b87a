"""Slice datasets (benchmark rows, pseudo-labels): write one from slices, merge several into one (CONTRACTS §2).

Every training set of every row is a 2D slice dataset (one dimensionality, so one plan fits all rows; see
`plans.py`). The `"mrgen"` dataset.json key carries the patient of every case (splits group by it), which cases
are not real acquisitions (`synthetic_cases`: generated or randomised copies; validation uses real cases only)
and the real:synthetic sampling ratio (None = every case equally likely, plain nnU-Net).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import Geometry, write_image, write_text_atomic
from mrgen_nnunet.data.nnunet_raw import (
    dataset_folder_name,
    find_dataset,
    list_cases,
    mrgen_key,
    read_dataset_json,
    staged_dataset,
    write_dataset_json,
)
from mrgen_nnunet.errors import MRGenError


@dataclass
class SliceCase:
    """One training case: image (H, W) float32, label (H, W) uint8 on the same 2D geometry."""

    case: str
    patient: str
    image: np.ndarray
    label: np.ndarray  # never None: a label-less slice is refused by write_slice_dataset
    geometry: Geometry


def _finish(folder: Path, meta: dict, patients: dict, synthetic: list[str], ratio: float | None,
            pseudo: list[str] | None = None) -> None:
    old = meta.get("mrgen", {})
    mrgen = mrgen_key(old.get("modality", ""), "slices", patients, sorted(synthetic), ratio, old.get("provenance"))
    if pseudo:  # real images with predicted labels: never validated on (nnUNetTrainerMRGen), sampled as real
        mrgen["pseudo_cases"] = sorted(pseudo)
    write_dataset_json(folder, meta["labels"], meta["channel_names"], len(patients), {"mrgen": mrgen})


def check_labelled(folder: Path, role: str) -> None:
    """Refuse a dataset that would train or test on images without labels: one converted as images only
    (`mrgen.images_only`, imagesTs), one with no imagesTr case, or an imagesTr case without its labelsTr file.
    `role` says what the dataset is for in the error, e.g. "part 'target' of row 'oracle'"."""
    meta = read_dataset_json(folder)
    fix = "convert the labelled sequence with its labels (--labels / --label-pattern)"
    if (meta.get("mrgen") or {}).get("images_only"):
        raise MRGenError(f"{role} is an images-only dataset (no labels)", folder / "dataset.json", fix)
    cases = list_cases(folder)
    if not cases:
        raise MRGenError(f"{role} has no labelled training case (imagesTr is empty)", folder / "imagesTr", fix)
    missing = [c for c in cases if not (folder / "labelsTr" / f"{c}.nii.gz").is_file()]
    if missing:
        raise MRGenError(f"{role}: {len(missing)} case(s) have no label, e.g. {missing[0]!r}",
                         folder / "labelsTr" / f"{missing[0]}.nii.gz", fix)


def labels_without_ignore(labels: dict) -> dict:
    """A label map minus nnU-Net's `ignore` entry (pseudo-labelled parts carry one, source parts do not)."""
    return {k: v for k, v in labels.items() if k != "ignore"}


def write_slice_dataset(
    out_raw: Path,
    dataset_id: int,
    name: str,
    cases: Iterable[SliceCase],
    meta: dict,
    synthetic: bool = True,
    force: bool = False,
    pseudo: bool = False,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write `cases` as `Dataset{id}_{name}` under out_raw; labels/channel names/modality taken from `meta`.

    `pseudo` lists every case in `mrgen.pseudo_cases`; `extra_files` (name -> text) are written beside dataset.json.

    With `synthetic` every case is listed in `mrgen.synthetic_cases`. Written in a hidden temp folder, renamed
    at the end: an interrupted run leaves no half dataset.
    """
    with staged_dataset(out_raw, dataset_id, name, force) as tmp:
        patients = {}
        for c in cases:
            if c.label is None:  # e.g. a slice of an images-only index: never written as a labelled case
                raise MRGenError(f"case {c.case} has no label", out_raw / dataset_folder_name(dataset_id, name),
                                 "write only labelled slices into a slice dataset")
            write_image(c.image.astype(np.float32), c.geometry, tmp / "imagesTr" / f"{c.case}_0000.nii.gz")
            write_image(c.label.astype(np.uint8), c.geometry, tmp / "labelsTr" / f"{c.case}.nii.gz")
            patients[c.case] = c.patient
        if not patients:
            raise MRGenError("no cases to write", out_raw, "check the source dataset")
        for file_name, text in (extra_files or {}).items():
            write_text_atomic(text, tmp / file_name)
        _finish(tmp, meta, patients, list(patients) if synthetic else [], None, list(patients) if pseudo else None)
    return find_dataset(out_raw, dataset_id)


def merge_slice_datasets(
    out_raw: Path,
    dataset_id: int,
    name: str,
    parts: list[Path],
    ratio: float | None,
    force: bool = False,
) -> Path:
    """One slice dataset holding every case of `parts` (raw dataset folders with the `mrgen` key).

    Case ids must be unique across parts. `synthetic_cases` and `patients` are the unions; `ratio` is the
    real:synthetic sampling weight for `nnUNetTrainerMRGen` (None = uniform over cases). dataset.json labels and
    channel names come from the first part; every part must have the same label map (an `ignore` label, which
    pseudo-labelled parts carry, is kept in the merged map). `pseudo_cases` is the union too.
    """
    for p in parts:  # an images-only part would add no case, silently
        check_labelled(p, f"merge part {p.name}")
    metas = [read_dataset_json(p) for p in parts]
    for p, m in zip(parts[1:], metas[1:], strict=True):
        if labels_without_ignore(m["labels"]) != labels_without_ignore(metas[0]["labels"]):
            raise MRGenError(f"label map {m['labels']} differs from {metas[0]['labels']}", p,
                             "merge only datasets with one label map")
    merged_meta = dict(metas[0])
    for m in metas:
        if "ignore" in m["labels"]:
            merged_meta["labels"] = m["labels"]
    with staged_dataset(out_raw, dataset_id, name, force) as tmp:
        patients, synthetic, pseudo = {}, [], []
        for part, meta in zip(parts, metas, strict=True):
            for case in list_cases(part):
                if case in patients:
                    raise MRGenError(f"case {case} appears in two datasets", part,
                                     "give the parts distinct case ids")
                for sub, suffix in (("imagesTr", "_0000.nii.gz"), ("labelsTr", ".nii.gz")):
                    (tmp / sub).mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(part / sub / f"{case}{suffix}", tmp / sub / f"{case}{suffix}")
                patients[case] = meta["mrgen"]["patients"][case]
            synthetic += meta["mrgen"].get("synthetic_cases", [])
            pseudo += meta["mrgen"].get("pseudo_cases", [])
        provenance = [str(p / m["mrgen"]["provenance"]) for p, m in zip(parts, metas, strict=True)
                      if m["mrgen"].get("provenance")]
        if provenance:
            write_text_atomic(json.dumps(provenance, indent=1) + "\n", tmp / "provenance_sources.json")
        _finish(tmp, merged_meta, patients, synthetic, ratio, pseudo)
    return find_dataset(out_raw, dataset_id)
