"""An existing nnU-Net raw dataset -> generator index (SliceRecord JSONL); the dataset itself is left untouched."""

from __future__ import annotations

import os
from pathlib import Path

from mrgen_nnunet.data.io import read_image
from mrgen_nnunet.data.nnunet_raw import FILE_ENDING, check_labels, list_cases, read_dataset_json
from mrgen_nnunet.data.prompts import resolve_modality
from mrgen_nnunet.data.records import SliceRecord, refuse_existing_index, write_index
from mrgen_nnunet.dataset_converters.common import _organs, check_label_values
from mrgen_nnunet.errors import MRGenError


def convert_nnunet(src: str | os.PathLike, index: str | os.PathLike | None = None, sequence: str | None = None,
                   all_slices: bool = False, modality_table: str | os.PathLike | None = None,
                   force: bool = False) -> Path:
    """Index every labelled axial slice (every slice with `all_slices`) of `src/imagesTr` + `labelsTr`.

    The modality comes from `sequence` or else the dataset.json `mrgen.modality` / first channel name. Patient
    ids come from `mrgen.patients` when present, else the case id. Returns the index path (default
    `src/mrgen_index.jsonl`); an existing index is replaced only with `force`.
    """
    src = Path(src)
    meta = read_dataset_json(src)
    labels = {k: int(v) for k, v in meta.get("labels", {}).items()}
    check_labels(labels, src / "dataset.json")
    mrgen = meta.get("mrgen", {})
    name = sequence or mrgen.get("modality") or meta.get("channel_names", {}).get("0", "")
    modality = resolve_modality(name, modality_table)
    cases = list_cases(src, "Tr")
    if not cases:
        raise MRGenError("no cases in imagesTr", src, "is this an nnU-Net raw dataset?")
    index = Path(index) if index is not None else src / "mrgen_index.jsonl"
    refuse_existing_index(index, force)
    index_dir = index.resolve().parent
    records = []
    for case in cases:
        image_file = src / "imagesTr" / f"{case}_0000{FILE_ENDING}"
        label_file = src / "labelsTr" / f"{case}{FILE_ENDING}"
        if not label_file.is_file():
            raise MRGenError("label file missing", label_file, "every training case needs a label")
        label, geom = read_image(label_file)
        label = check_label_values(label, labels, label_file)
        slices = [label] if label.ndim == 2 else list(label)
        for k, lab in enumerate(slices):
            if not all_slices and not lab.any():
                continue
            records.append(SliceRecord(
                case_id=case, patient_id=mrgen.get("patients", {}).get(case, case), slice_index=k,
                image_file=os.path.relpath(image_file.resolve(), index_dir),
                label_file=os.path.relpath(label_file.resolve(), index_dir), modality=modality.key,
                attributes=modality.attributes, region=modality.region, organs=_organs(lab, labels),
                labels=labels, spacing=[float(s) for s in geom.spacing[:2]], dataset=src.name))
    if not records:
        raise MRGenError("no slice has foreground", src, "pass --all-slices to index empty slices too")
    return write_index(records, index)
