"""Medical Segmentation Decathlon Task05_Prostate: 4D `imagesTr/prostate_K.nii.gz` (channels T2, ADC) and
`labelsTr/prostate_K.nii.gz` (1 peripheral zone, 2 transition zone). One channel per dataset (`sequence`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import Geometry, read_image
from mrgen_nnunet.data.prompts import resolve_modality
from mrgen_nnunet.dataset_converters.common import check_label_values, write_dataset
from mrgen_nnunet.dataset_converters.sources import Volume, VolumeSource, numbered_files, parse_patients
from mrgen_nnunet.errors import MRGenError

ZONES = {"background": 0, "peripheral zone of prostate": 1, "transition zone of prostate": 2}
MERGED = {"background": 0, "prostate": 1}


def convert_msd_prostate(src: str | os.PathLike, out_raw: str | os.PathLike, dataset_id: int,
                         name: str | None = None, sequence: str = "T2", patients: str | None = None,
                         merge_prostate: bool = False, as_slices: bool = False, all_slices: bool = False,
                         index: str | os.PathLike | None = None, force: bool = False,
                         modality_table: str | os.PathLike | None = None) -> Path:
    """Convert the T2 or ADC channel; with `merge_prostate` PZ and TZ become one label `prostate`.

    Case ids `MSD{T2|ADC}{K:03d}`; patient ids `MSD_Prostate/{K:03d}` (the same person in both channels).
    """
    src = Path(src)
    if not (src / "imagesTr").is_dir():
        raise MRGenError("no imagesTr folder", src, "pass the Task05_Prostate folder")
    channel = _channel_index(src, sequence)
    images = numbered_files(src / "imagesTr", "prostate_")
    wanted = parse_patients(patients)
    if wanted is not None:
        if wanted - set(images):
            raise MRGenError(f"patients {sorted(wanted - set(images))} not found", src / "imagesTr", "check --patients")
        images = {k: v for k, v in images.items() if k in wanted}
    labels = MERGED if merge_prostate else ZONES
    remap = (lambda lab: (lab > 0).astype(np.int64)) if merge_prostate else None
    prefix = f"MSD{sequence.upper()}"
    sources = []
    for k, image in images.items():
        label = src / "labelsTr" / image.name
        if not label.is_file():
            raise MRGenError("label file missing", label, "every imagesTr file needs its labelsTr file")
        sources.append(VolumeSource(f"{prefix}{k:03d}", f"MSD_Prostate/{k:03d}", str(image),
                                    lambda i=image, lab=label: load_channel(i, lab, channel, labels, remap)))
    return write_dataset(sources, out_raw=out_raw, dataset_id=dataset_id, name=name or f"MSD_Prostate_{sequence.upper()}",
                         labels=labels, modality=resolve_modality(sequence, modality_table, option="--sequence"),
                         channel_name=sequence.upper(), as_slices=as_slices, all_slices=all_slices, index=index,
                         force=force, dataset_tag=f"MSD_Prostate_{sequence.upper()}",
                         description="MSD Task05_Prostate (Antonelli et al. 2022, CC BY-SA 4.0)")


def _channel_index(src: Path, sequence: str) -> int:
    channels = {"0": "T2", "1": "ADC"}
    meta = src / "dataset.json"
    if meta.is_file():
        try:
            d = json.loads(meta.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise MRGenError(f"invalid JSON: {exc.msg}", meta, "fix the file") from None
        channels = d.get("modality") or d.get("channel_names") or channels
    for i, ch in channels.items():
        if ch.upper() == sequence.upper():
            return int(i)
    raise MRGenError(f"no channel {sequence!r} in this dataset", src, f"choose one of {', '.join(channels.values())}")


def load_channel(image_path: Path, label_path: Path, channel: int, labels: dict[str, int], remap) -> Volume:
    """One channel of a 4D MSD image ((c, z, y, x) in SimpleITK order) with its 3D label."""
    array, geom = read_image(image_path)
    if array.ndim != 4 or channel >= array.shape[0]:
        raise MRGenError(f"expected a 4D image with a channel {channel}, got shape {array.shape}", image_path,
                         "MSD prostate images hold T2 and ADC as 4th dimension")
    image = array[channel].astype(np.float32)
    geometry = Geometry(geom.spacing[:3], geom.origin[:3],
                        tuple(np.asarray(geom.direction).reshape(4, 4)[:3, :3].ravel().tolist()))
    if not np.isfinite(image).all():
        raise MRGenError("image has NaN/Inf values", image_path, "clean the image or exclude this patient")
    label, lgeom = read_image(label_path)
    if label.shape != image.shape:
        raise MRGenError(f"label shape {label.shape} differs from image shape {image.shape}", label_path,
                         "image and label must share one voxel grid")
    if not np.allclose(lgeom.spacing, geometry.spacing, rtol=1e-3, atol=1e-4):
        raise MRGenError("label spacing differs from image spacing", label_path, "resample the label")
    return Volume(image, check_label_values(label, labels, label_path, remap), geometry)
