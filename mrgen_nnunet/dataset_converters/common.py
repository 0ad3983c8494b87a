"""What every converter shares: loading an image/label pair with checks, writing the nnU-Net dataset
(3D volumes or 2D slices, CONTRACTS §2) inside a staged folder, and the generator index (SliceRecord JSONL).

A converter only finds its cases and says how to load them (`VolumeSource`, sources.py); `write_dataset` does the
rest.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import Geometry, extract_slice, read_image, slice_geometry, write_image
from mrgen_nnunet.data.nnunet_raw import (
    check_labels,
    dataset_folder_name,
    mrgen_key,
    staged_dataset,
    write_dataset_json,
)
from mrgen_nnunet.data.prompts import ModalityInfo
from mrgen_nnunet.data.records import SliceRecord, refuse_existing_index, write_index
from mrgen_nnunet.dataset_converters.sources import Volume, VolumeSource, check_unique_case_ids
from mrgen_nnunet.errors import MRGenError


def load_pair(image_path: Path, label_path: Path | None, labels: dict[str, int] | None,
              remap: Callable[[np.ndarray], np.ndarray] | None = None) -> Volume:
    """Read image + label, check finite values, same shape and spacing, and label values inside `labels`.

    `remap` turns raw label values into the label map's values (e.g. MSD PZ/TZ -> prostate) before the check.
    """
    image, geometry = read_image(image_path)
    if image.ndim != 3:
        raise MRGenError(f"image is {image.ndim}D {image.shape}, expected one 3D volume", image_path,
                         "split 4D / multi-channel images into 3D volumes first (MSD: use `convert msd-prostate`)")
    if not np.isfinite(image).all():
        raise MRGenError("image has NaN/Inf values", image_path, "clean the image or exclude this patient")
    label = None
    if label_path is not None:
        label, lgeom = read_image(label_path)
        if label.shape != image.shape:
            raise MRGenError(f"label shape {label.shape} differs from image shape {image.shape}", label_path,
                             "image and label must share one voxel grid")
        if not np.allclose(lgeom.spacing, geometry.spacing, rtol=1e-3, atol=1e-4):
            raise MRGenError(f"label spacing {tuple(round(s, 4) for s in lgeom.spacing)} differs from image "
                             f"spacing {tuple(round(s, 4) for s in geometry.spacing)}", label_path,
                             "resample the label onto the image grid")
        if not (np.allclose(lgeom.origin, geometry.origin, atol=1e-3)
                and np.allclose(lgeom.direction, geometry.direction, atol=1e-4)):
            raise MRGenError("label origin/direction differ from the image's", label_path,
                             "resample the label onto the image grid")
        label = check_label_values(label, labels, label_path, remap)
    return Volume(image.astype(np.float32), label, geometry)


def check_label_values(label: np.ndarray, labels: dict[str, int] | None, where: object,
                       remap: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Integer-valued label (after `remap`) whose values all lie in `labels` -> uint8 array."""
    if not np.all(np.isfinite(label)) or not np.all(np.rint(label) == label):
        raise MRGenError("label map has non-integer values", where, "labels must be integer class maps")
    label = label.astype(np.int64)
    if remap is not None:
        label = remap(label)
    if labels is not None:
        unknown = sorted(set(np.unique(label).tolist()) - set(labels.values()))
        if unknown:
            raise MRGenError(f"label values {unknown} are not in the label map {labels}", where,
                             "fix the label file or pass the right --labels")
    return label.astype(np.uint8)


def _organs(label2d: np.ndarray | None, labels: dict[str, int]) -> list[str]:
    if label2d is None:
        return []
    present = set(np.unique(label2d).tolist())
    return [n for n, v in sorted(labels.items(), key=lambda kv: kv[1]) if v != 0 and v in present]


def write_dataset(sources: list[VolumeSource], *, out_raw: str | os.PathLike, dataset_id: int, name: str,
                  labels: dict[str, int], modality: ModalityInfo, channel_name: str, as_slices: bool,
                  all_slices: bool = False, index: str | os.PathLike | None = None, force: bool = False,
                  dataset_tag: str = "", description: str = "") -> Path:
    """Write `out_raw/DatasetNNN_name` (all-or-nothing) and, with `index`, the generator index. Returns the folder.

    as_slices: each axial slice with foreground (every slice with `all_slices`) becomes a 2D case
    `"{case_id}_z{k:03d}"` at that slice's own geometry; otherwise each volume is one 3D case (test sets).
    Images are written as float32, labels as uint8, into imagesTr/labelsTr.
    """
    from rich.progress import track

    if not sources:
        raise MRGenError("no cases found", dataset_tag or out_raw, "check the source folder, --patients and --sequence")
    check_labels(labels, "label map")
    check_unique_case_ids(sources)
    refuse_existing_index(index, force)
    out_raw = Path(out_raw)
    final = out_raw / dataset_folder_name(dataset_id, name)
    patients: dict[str, str] = {}
    records: list[SliceRecord] = []
    index_dir = Path(index).resolve().parent if index is not None else None

    def rel(p: Path) -> str:
        p = (final / p).resolve()
        return os.path.relpath(p, index_dir) if index_dir is not None else str(p)

    with staged_dataset(out_raw, dataset_id, name, force=force) as tmp:
        for src in track(sources, description=f"converting {final.name}", transient=True):
            vol = src.load()
            if vol.label is None:
                raise MRGenError("case has no label map", src.source, "nnU-Net datasets need labels for every case")
            if as_slices and vol.image.ndim == 3:
                ks = range(vol.image.shape[0])
                for k in ks:
                    lab = extract_slice(vol.label, k)
                    if not all_slices and not lab.any():
                        continue
                    case = f"{src.case_id}_z{k:03d}"
                    geom = slice_geometry(vol.geometry, k)
                    write_image(extract_slice(vol.image, k), geom, tmp / "imagesTr" / f"{case}_0000.nii.gz")
                    write_image(lab, geom, tmp / "labelsTr" / f"{case}.nii.gz")
                    patients[case] = src.patient_id
                    records.append(_record(src, case, 0, rel(Path("imagesTr") / f"{case}_0000.nii.gz"),
                                           rel(Path("labelsTr") / f"{case}.nii.gz"), lab, labels, modality, geom,
                                           dataset_tag))
            else:
                case = src.case_id
                write_image(vol.image, vol.geometry, tmp / "imagesTr" / f"{case}_0000.nii.gz")
                write_image(vol.label, vol.geometry, tmp / "labelsTr" / f"{case}.nii.gz")
                patients[case] = src.patient_id
                n = vol.image.shape[0] if vol.image.ndim == 3 else 1
                for k in range(n):
                    lab = extract_slice(vol.label, k)
                    if all_slices or lab.any():
                        records.append(_record(src, case, k if vol.image.ndim == 3 else 0,
                                               rel(Path("imagesTr") / f"{case}_0000.nii.gz"),
                                               rel(Path("labelsTr") / f"{case}.nii.gz"), lab, labels, modality,
                                               vol.geometry, dataset_tag))
        if not patients:
            raise MRGenError("no slice has foreground", dataset_tag or final.name,
                             "pass --all-slices to keep empty slices, or check the labels")
        kind = "slices" if as_slices else "volumes"
        write_dataset_json(tmp, labels, {"0": channel_name}, len(patients), dataset_name=final.name,
                           extra={"description": description or f"{dataset_tag} converted by mrgen-nnunet",
                                  "mrgen": mrgen_key(modality.key, kind, patients)})
        if index is not None:  # before the dataset is renamed in: a published dataset always has its index
            write_index(records, index)
    return final


def _record(src: VolumeSource, case: str, k: int, image_file: str, label_file: str, lab: np.ndarray,
            labels: dict[str, int], modality: ModalityInfo, geom: Geometry, tag: str) -> SliceRecord:
    return SliceRecord(case_id=case, patient_id=src.patient_id, slice_index=k, image_file=image_file,
                       modality=modality.key, label_file=label_file, attributes=modality.attributes,
                       region=modality.region, organs=_organs(lab, labels), labels=dict(labels),
                       spacing=[float(s) for s in geom.spacing[:2]], dataset=tag)


def read_png(path: Path) -> np.ndarray:
    """8/16-bit PNG/JPEG -> (H, W) float32 grey (colour averaged). Read with Pillow, which fails cleanly
    (libpng via SimpleITK prints to stderr on broken files)."""
    from PIL import Image, UnidentifiedImageError

    if not Path(path).is_file():
        raise MRGenError("image file not found", path, "check the path")
    try:
        with Image.open(path) as im:
            array = np.asarray(im, dtype=np.float32)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise MRGenError(f"cannot read image: {exc}", path, "the file is corrupt or truncated; re-export it") from None
    return array[..., :3].mean(axis=-1) if array.ndim == 3 else array


def write_images_dataset(sources: list[VolumeSource], *, out_raw: str | os.PathLike, dataset_id: int, name: str,
                         modality: ModalityInfo, channel_name: str, as_slices: bool = False,
                         index: str | os.PathLike | None = None, force: bool = False, dataset_tag: str = "") -> Path:
    """Images without labels (target scans): `out_raw/DatasetNNN_name/imagesTs` (all-or-nothing) and, with `index`,
    a generator index of label-less records (label_file None, organs [], labels {}) — one per axial slice.

    Images go to imagesTs, nnU-Net's folder for unlabelled images: `nnUNetv2_predict -i` and `mrgen-nnunet
    pseudo-label --images` read it, and nnU-Net planning never trains on it. Each volume is one 3D case at its own
    geometry (with `as_slices`, one 2D case per axial slice, `{case}_z{k:03d}`). Intensities are kept as float32;
    normalisation happens later (per slice for the generator, per case in nnU-Net). dataset.json has only the
    background label, `numTraining` 0 and `mrgen.images_only` true.
    """
    from rich.progress import track

    if not sources:
        raise MRGenError("no cases found", dataset_tag or out_raw, "check the source folder and --pattern")
    check_unique_case_ids(sources)
    refuse_existing_index(index, force)
    out_raw = Path(out_raw)
    final = out_raw / dataset_folder_name(dataset_id, name)
    index_dir = Path(index).resolve().parent if index is not None else None
    patients: dict[str, str] = {}
    records: list[SliceRecord] = []

    def record(src: VolumeSource, case: str, k: int, file: str, geom: Geometry) -> SliceRecord:
        path = (final / "imagesTs" / file).resolve()
        return SliceRecord(case_id=case, patient_id=src.patient_id, slice_index=k,
                           image_file=os.path.relpath(path, index_dir) if index_dir is not None else str(path),
                           modality=modality.key, label_file=None, attributes=modality.attributes,
                           region=modality.region, organs=[], labels={},
                           spacing=[float(s) for s in geom.spacing[:2]], dataset=dataset_tag)

    with staged_dataset(out_raw, dataset_id, name, force=force) as tmp:
        for src in track(sources, description=f"converting {final.name}", transient=True):
            vol = src.load()
            depth = vol.image.shape[0] if vol.image.ndim == 3 else 1
            if as_slices and vol.image.ndim == 3:
                for k in range(depth):
                    case, geom = f"{src.case_id}_z{k:03d}", slice_geometry(vol.geometry, k)
                    write_image(extract_slice(vol.image, k), geom, tmp / "imagesTs" / f"{case}_0000.nii.gz")
                    patients[case] = src.patient_id
                    records.append(record(src, case, 0, f"{case}_0000.nii.gz", geom))
            else:
                write_image(vol.image, vol.geometry, tmp / "imagesTs" / f"{src.case_id}_0000.nii.gz")
                patients[src.case_id] = src.patient_id
                records += [record(src, src.case_id, k, f"{src.case_id}_0000.nii.gz", vol.geometry)
                            for k in range(depth)]
        write_dataset_json(tmp, {"background": 0}, {"0": channel_name}, 0, dataset_name=final.name,
                           extra={"description": f"{dataset_tag} unlabelled images converted by mrgen-nnunet",
                                  "numTest": len(patients),
                                  "mrgen": mrgen_key(modality.key, "slices" if as_slices else "volumes", patients)
                                  | {"images_only": True}})
        if index is not None:
            write_index(records, index)
    return final
