"""MRGen-DB release format.

* `conditional_dataset/<NAME>_{all,train,test}.json`: lists of records with `image_path` (8-bit PNG slice),
  `mask0_path`, `mask1_path`, ... (one 0/255 PNG per organ in `label` order), `modality`,
  `modality_attributes`, `region`, `label`, `volume_nii_path`, `dataset`. Paths are relative to the release root.
  -> a 2D slice nnU-Net dataset (label values 1..K in `label` order) and an index with each record's own text.
* `radiopaedia_data/*.json`: image–text records without masks -> index only.

Paths are taken from the JSON, never guessed; a path that is absolute or escapes the root (also via a symlink)
is an error. Records whose files are missing are skipped and counted (fatal with `strict`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import Geometry, write_image
from mrgen_nnunet.data.nnunet_raw import dataset_folder_name, mrgen_key, staged_dataset, write_dataset_json
from mrgen_nnunet.data.prompts import resolve_modality
from mrgen_nnunet.data.records import SliceRecord, refuse_existing_index, write_index
from mrgen_nnunet.dataset_converters.common import read_png
from mrgen_nnunet.errors import MRGenError

REQUIRED = ("image_path", "label", "modality")


def safe_path(root: Path, value: object, where: str) -> Path:
    """`root / value` resolved; absolute paths and paths leaving `root` (.., symlinks) raise MRGenError."""
    if not isinstance(value, str) or not value or "\x00" in value:
        raise MRGenError(f"path {value!r:.80} is not a non-empty string without NUL bytes", where,
                         "fix the JSON record")
    if os.path.isabs(value) or re.match(r"^[A-Za-z]:[\\/]", value):
        raise MRGenError(f"absolute path {value!r} is not allowed", where, "paths must be relative to the dataset root")
    resolved = (root / value).resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise MRGenError(f"path {value!r} escapes the dataset root", where, "paths must stay inside the dataset root")
    return resolved


def _load_json_list(path: Path) -> list[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MRGenError(f"invalid JSON: {exc}", path, "fix or re-download the file") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise MRGenError("expected a JSON list of records", path, "is this an MRGen-DB json file?")
    return data


def _subset_files(root: Path, subset: str | None) -> list[Path]:
    folder = root / "conditional_dataset"
    if not folder.is_dir():
        raise MRGenError("no conditional_dataset folder", root, "pass the MRGen-DB root folder")
    files = sorted(folder.glob("*.json"))
    names = sorted({re.sub(r"_(all|train|test)$", "", f.stem) for f in files})
    if not files:
        raise MRGenError("no JSON files in conditional_dataset", folder, "pass the MRGen-DB root folder")
    if subset is None:
        if len(names) > 1:
            raise MRGenError("several conditional datasets", folder, f"pick one with --subset: {', '.join(names)}")
        subset = names[0]
    if (folder / f"{subset}.json").is_file():
        return [folder / f"{subset}.json"]
    if (folder / f"{subset}_all.json").is_file():
        return [folder / f"{subset}_all.json"]
    parts = [p for p in (folder / f"{subset}_train.json", folder / f"{subset}_test.json") if p.is_file()]
    if not parts:
        raise MRGenError(f"unknown subset {subset!r}", folder, f"choose one of {', '.join(names)}")
    return parts


def _check_modality(value: object, where: str, key: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise MRGenError(f"'{key}' must be a non-empty modality name, got {value!r:.80}", where, "fix the JSON record")


def _report_missing(missing: list, strict: bool) -> None:
    """Records whose files are missing: an error with --strict, else one warning naming the first."""
    if not missing:
        return
    if strict:
        raise MRGenError(f"{len(missing)} record(s) point to missing files", missing[0],
                         "restore the files or drop --strict to skip them")
    _warn(f"skipped {len(missing)} record(s) whose files are missing (first: {missing[0]})")


def _warn(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"mrgen-nnunet: warning: {message}", highlight=False)


def convert_mrgen_db(src: str | os.PathLike, out_raw: str | os.PathLike, dataset_id: int, name: str | None = None,
                     subset: str | None = None, all_slices: bool = False, index: str | os.PathLike | None = None,
                     strict: bool = False, force: bool = False, workers: int = 1) -> Path:
    """One conditional dataset (`subset`, e.g. `MSCMR_LGE`) -> slice dataset `{dataset}{N:03d}_z{k:03d}`.

    N numbers the source volumes (`volume_nii_path`, else the image's folder) in order of appearance, k the
    record's position within its volume. Patient id `{dataset}/{volume}`. `workers` > 1 reads and writes slices in
    a process pool (same output). Slices are read and written one at a time; only their metadata is kept.
    """
    from rich.progress import track

    refuse_existing_index(index, force)
    root = Path(src)
    records: list[tuple[Path, int, dict]] = []
    for f in _subset_files(root, subset):
        records += [(f, n, r) for n, r in enumerate(_load_json_list(f))]
    labels = None
    items, missing = [], []
    volumes: dict[str, int] = {}
    seen_in_volume: dict[str, int] = {}
    for f, n, r in records:
        where = f"{f}:record {n}"
        lacking = [k for k in REQUIRED if k not in r]
        if lacking:
            raise MRGenError(f"record lacks field(s) {', '.join(lacking)}", where, "fix the JSON record")
        _check_modality(r["modality"], where, "modality")
        if not isinstance(r["label"], list) or not all(isinstance(o, str) and o for o in r["label"]):
            raise MRGenError(f"'label' must be a list of organ names, got {r['label']!r:.80}", where,
                             "fix the JSON record")
        names = list(r["label"])
        rec_labels = {"background": 0, **{o: i + 1 for i, o in enumerate(names)}}
        if labels is None:
            labels = rec_labels
        elif rec_labels != labels:
            raise MRGenError(f"record label list {names} differs from the first record's", where,
                             "convert one conditional dataset at a time (--subset)")
        lacking = [f"mask{i}_path" for i in range(len(names)) if f"mask{i}_path" not in r]
        if lacking:
            raise MRGenError(f"record lacks field(s) {', '.join(lacking)}", where, "fix the JSON record")
        image = safe_path(root, r["image_path"], where)
        masks = [safe_path(root, r[f"mask{i}_path"], where) for i in range(len(names))]
        absent = [p for p in (image, *masks) if not p.is_file()]
        if absent:
            missing.append(absent[0])
            continue
        volume = str(r.get("volume_nii_path") or Path(r["image_path"]).parent)
        volumes.setdefault(volume, len(volumes) + 1)
        k = seen_in_volume.get(volume, 0)
        seen_in_volume[volume] = k + 1
        items.append((r, image, masks, volume, k, where))
    _report_missing(missing, strict)
    if not items:
        raise MRGenError("no usable records", root / "conditional_dataset", "check the JSON paths and files")
    tag = str(items[0][0].get("dataset", subset or "MRGenDB"))
    prefix = re.sub(r"[^A-Za-z0-9]", "", tag)
    final = Path(out_raw) / dataset_folder_name(dataset_id, name or re.sub(r"[^A-Za-z0-9_\-]", "_", tag))
    index_dir = Path(index).resolve().parent if index is not None else None
    slice_records, patients = [], {}
    if workers < 1:
        raise MRGenError(f"--workers {workers} must be >= 1", "--workers", "use 1 (no pool) or the number of cores")
    with staged_dataset(out_raw, dataset_id, final.name.split("_", 1)[1], force=force) as tmp:
        jobs = ((image_path, masks, f"{prefix}{volumes[volume]:03d}_z{k:03d}", tmp, all_slices, labels)
                for _r, image_path, masks, volume, k, _where in items)
        pool = None if workers == 1 else _pool(workers)
        try:
            done = map(_convert_slice, jobs) if pool is None else pool.map(_convert_slice, jobs, chunksize=16)
            for (r, _i, _m, volume, _k, _w), (case, organs) in track(zip(items, done, strict=True), total=len(items),
                                                                     description=f"converting {final.name}",
                                                                     transient=True):
                if case is None:
                    continue
                patients[case] = f"{tag}/{Path(volume).name.split('.')[0]}"
                slice_records.append(_slice_record(r, case, patients[case], organs, labels, tag, final, index_dir))
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        if not patients:
            raise MRGenError("no record has a non-empty mask", root, "pass --all-slices to keep empty slices")
        modality = items[0][0]["modality"]
        write_dataset_json(tmp, labels, {"0": modality.split()[0]}, len(patients), dataset_name=final.name,
                           extra={"description": f"{tag} from MRGen-DB (Wu et al. 2024)",
                                  "mrgen": mrgen_key(modality, "slices", patients)})
        if index is not None:  # before the dataset is renamed in: a published dataset always has its index
            write_index(slice_records, index)
    return final


def _pool(workers: int):
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    return ProcessPoolExecutor(workers, mp_context=get_context("spawn"))  # no fork of a process holding torch


def _convert_slice(job) -> tuple[str | None, list[str]]:
    """Read one record's PNG slice and organ masks, write image and label map as 2D NIfTI into the staging
    folder; (case, organs present), or (None, []) for an empty mask without `all_slices`."""
    image_path, masks, case, tmp, all_slices, labels = job
    image = read_png(image_path)
    label = np.zeros(image.shape, dtype=np.uint8)
    for value, mask_path in enumerate(masks, start=1):
        mask = read_png(mask_path)
        if mask.shape != image.shape:
            raise MRGenError(f"mask shape {mask.shape} differs from image shape {image.shape}", mask_path,
                             "masks must match their image")
        label[mask > 127] = value
    if not all_slices and not label.any():
        return None, []
    geom = Geometry.default(2)
    write_image(image.astype(np.float32), geom, tmp / "imagesTr" / f"{case}_0000.nii.gz")
    write_image(label, geom, tmp / "labelsTr" / f"{case}.nii.gz")
    return case, [o for o, v in labels.items() if v and (label == v).any()]


def _slice_record(r: dict, case: str, patient: str, organs: list[str], labels: dict[str, int], tag: str,
                  final: Path, index_dir: Path | None) -> SliceRecord:
    def rel(sub: str) -> str:
        p = final / sub / case
        return os.path.relpath(p, index_dir) if index_dir else str(p)

    spacing = [float(s) for s in Geometry.default(2).spacing[:2]]
    return SliceRecord(case_id=case, patient_id=patient, slice_index=0, image_file=rel("imagesTr") + "_0000.nii.gz",
                       label_file=rel("labelsTr") + ".nii.gz", modality=r["modality"],
                       attributes=r.get("modality_attributes", ""), region=r.get("region", ""), organs=organs,
                       labels=dict(labels), spacing=spacing, dataset=tag)


def index_mrgen_db_images(src: str | os.PathLike, index: str | os.PathLike, strict: bool = False,
                          modality_table: str | os.PathLike | None = None, force: bool = False) -> Path:
    """`radiopaedia_data/*.json` image–text records -> index (no labels). Modality from `aux_modality` through
    the alias table (attributes/region from the table, region overridden by the record's). An existing index is
    replaced only with `force`."""
    refuse_existing_index(index, force)
    root = Path(src)
    files = sorted((root / "radiopaedia_data").glob("*.json"))
    if not files:
        raise MRGenError("no radiopaedia_data/*.json files", root, "pass the MRGen-DB root folder")
    index = Path(index)
    index_dir = index.resolve().parent
    out, missing = [], []
    for f in files:
        for n, r in enumerate(_load_json_list(f)):
            where = f"{f}:record {n}"
            lacking = [k for k in ("image_path", "aux_modality") if k not in r]
            if lacking:
                raise MRGenError(f"record lacks field(s) {', '.join(lacking)}", where, "fix the JSON record")
            image = safe_path(root, r["image_path"], where)
            if not image.is_file():
                missing.append(image)
                continue
            parts = image.relative_to(root.resolve()).parts
            if len(parts) < 2:
                raise MRGenError(f"image {r['image_path']!r} lies in the release root, not in a case folder", where,
                                 "keep radiopaedia images in <folder>/<case>/ as released")
            _check_modality(r["aux_modality"], where, "aux_modality")
            info = resolve_modality(r["aux_modality"], modality_table, option=f"{where}: aux_modality")
            organs = r.get("organs") or []
            out.append(SliceRecord(
                case_id=f"rp_{len(out):06d}", patient_id=f"radiopaedia/{parts[1]}",
                slice_index=0, image_file=os.path.relpath(image, index_dir), modality=info.key,
                attributes=info.attributes, region=r.get("region") or info.region,
                organs=[organs] if isinstance(organs, str) else list(organs), dataset="radiopaedia"))
    _report_missing(missing, strict)
    if not out:
        raise MRGenError("no usable records", root / "radiopaedia_data", "check the JSON paths and files")
    return write_index(out, index)
