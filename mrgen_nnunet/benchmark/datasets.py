"""Slice datasets for the benchmark rows: write one from slices, merge several into one (CONTRACTS §2).

Every training set of every row is a 2D slice dataset (one dimensionality, so one plan fits all rows; see
`plans.py`). The `"mrgen"` dataset.json key carries the patient of every case (splits group by it), which cases
are not real acquisitions (`synthetic_cases`: generated or randomised copies; validation uses real cases only)
and the real:synthetic sampling ratio (None = every case equally likely, plain nnU-Net).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import Geometry, write_image, write_text_atomic
from mrgen_nnunet.errors import MRGenError


@dataclass
class SliceCase:
    """One training case: image (H, W) float32, label (H, W) uint8 on the same 2D geometry."""

    case: str
    patient: str
    image: np.ndarray
    label: np.ndarray
    geometry: Geometry


def read_meta(folder: Path) -> dict:
    """dataset.json of a raw dataset folder (MRGenError when absent)."""
    path = Path(folder) / "dataset.json"
    if not path.is_file():
        raise MRGenError("dataset has no dataset.json", folder, "point to an nnU-Net raw dataset folder")
    return json.loads(path.read_text())


def training_cases(folder: Path) -> list[str]:
    """Case ids under imagesTr (from the `_0000` channel files), sorted."""
    ending = "_0000.nii.gz"
    return sorted(p.name[: -len(ending)] for p in (Path(folder) / "imagesTr").glob(f"*{ending}"))


def _final_folder(out_raw: Path, dataset_id: int, name: str, force: bool) -> Path:
    existing = sorted(Path(out_raw).glob(f"Dataset{dataset_id:03d}_*"))
    if existing and not force:
        raise MRGenError(f"nnU-Net dataset id {dataset_id} exists", existing[0], "choose another id or pass force")
    for old in existing:
        shutil.rmtree(old)
    return Path(out_raw) / f"Dataset{dataset_id:03d}_{name}"


@contextmanager
def _staging(final: Path):
    """A hidden temp folder beside `final`, removed if the body fails (nothing half-written stays)."""
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _finish(tmp: Path, final: Path, meta: dict, patients: dict, synthetic: list[str], ratio: float | None) -> Path:
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    mrgen = dict(meta.get("mrgen", {}))
    mrgen.update({"kind": "slices", "patients": patients, "synthetic_cases": sorted(synthetic),
                  "real_to_synthetic_ratio": ratio, "provenance": mrgen.get("provenance")})
    generate_dataset_json(str(tmp), meta["channel_names"], meta["labels"], len(patients), ".nii.gz",
                          dataset_name=final.name, mrgen=mrgen)
    tmp.rename(final)
    return final


def write_slice_dataset(
    out_raw: Path,
    dataset_id: int,
    name: str,
    cases: Iterable[SliceCase],
    meta: dict,
    synthetic: bool = True,
    force: bool = False,
) -> Path:
    """Write `cases` as `Dataset{id}_{name}` under out_raw; labels/channel names/modality taken from `meta`.

    With `synthetic` every case is listed in `mrgen.synthetic_cases`. Written in a hidden temp folder, renamed
    at the end: an interrupted run leaves no half dataset.
    """
    final = _final_folder(out_raw, dataset_id, name, force)
    with _staging(final) as tmp:
        patients = {}
        for c in cases:
            write_image(c.image.astype(np.float32), c.geometry, tmp / "imagesTr" / f"{c.case}_0000.nii.gz")
            write_image(c.label.astype(np.uint8), c.geometry, tmp / "labelsTr" / f"{c.case}.nii.gz")
            patients[c.case] = c.patient
        if not patients:
            raise MRGenError("no cases to write", final, "check the source dataset")
        return _finish(tmp, final, meta, patients, list(patients) if synthetic else [], None)


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
    channel names come from the first part; every part must have the same label map.
    """
    metas = [read_meta(p) for p in parts]
    for p, m in zip(parts[1:], metas[1:], strict=True):
        if m["labels"] != metas[0]["labels"]:
            raise MRGenError(f"label map {m['labels']} differs from {metas[0]['labels']}", p,
                             "merge only datasets with one label map")
    final = _final_folder(out_raw, dataset_id, name, force)
    with _staging(final) as tmp:
        patients, synthetic = {}, []
        for part, meta in zip(parts, metas, strict=True):
            for case in training_cases(part):
                if case in patients:
                    raise MRGenError(f"case {case} appears in two datasets", part,
                                     "give the parts distinct case ids")
                for sub, suffix in (("imagesTr", "_0000.nii.gz"), ("labelsTr", ".nii.gz")):
                    (tmp / sub).mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(part / sub / f"{case}{suffix}", tmp / sub / f"{case}{suffix}")
                patients[case] = meta["mrgen"]["patients"][case]
            synthetic += meta["mrgen"].get("synthetic_cases", [])
        provenance = [str(p / m["mrgen"]["provenance"]) for p, m in zip(parts, metas, strict=True)
                      if m["mrgen"].get("provenance")]
        if provenance:
            write_text_atomic(json.dumps(provenance, indent=1) + "\n", tmp / "provenance_sources.json")
        return _finish(tmp, final, metas[0], patients, synthetic, ratio)
