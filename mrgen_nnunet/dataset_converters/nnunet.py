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
                   force: bool = False, subset: str = "Tr", images_only: bool = False) -> Path:
    """Index the axial slices of `src/images{subset}` (Tr or Ts).

    Labelled (imagesTr with a label for every case in labelsTr): every slice with foreground (every slice with
    `all_slices`), label maps from dataset.json. Images only (imagesTs, an imagesTr without any labelsTr file, or
    `images_only`, which ignores labels): every slice as a label-less record (label_file None, organs [],
    labels {}). Some but not all imagesTr cases labelled is an error. The modality comes from `sequence` or else
    the dataset.json `mrgen.modality` / first channel name. Patient ids come from `mrgen.patients` when present,
    else the case id. Returns the index path (default `src/mrgen_index.jsonl`, `src/mrgen_index_Ts.jsonl` for Ts);
    an existing index is replaced only with `force`.
    """
    src = Path(src)
    if subset not in ("Tr", "Ts"):
        raise MRGenError(f"unknown subset {subset!r}", "--subset", "use Tr (imagesTr) or Ts (imagesTs)")
    meta = read_dataset_json(src)
    mrgen = meta.get("mrgen", {})
    name = sequence or mrgen.get("modality") or meta.get("channel_names", {}).get("0", "")
    modality = resolve_modality(name, modality_table, option="--sequence" if sequence else src / "dataset.json")
    cases = list_cases(src, subset)
    if not cases:
        raise MRGenError(f"no cases in images{subset}", src, "is this an nnU-Net raw dataset? (--subset Tr|Ts)")
    label_files = {c: src / "labelsTr" / f"{c}{FILE_ENDING}" for c in cases}
    labelled = subset == "Tr" and not images_only and any(f.is_file() for f in label_files.values())
    if labelled:
        lacking = [c for c, f in label_files.items() if not f.is_file()]
        if lacking:
            raise MRGenError(f"{len(lacking)} of {len(cases)} imagesTr cases have no label, e.g. {lacking[0]}",
                             label_files[lacking[0]], "give every case its label, or index the images without "
                             "labels with --images-only")
        labels = {k: int(v) for k, v in meta.get("labels", {}).items()}
        check_labels(labels, src / "dataset.json")
    default = "mrgen_index.jsonl" if subset == "Tr" else "mrgen_index_Ts.jsonl"
    index = Path(index) if index is not None else src / default
    refuse_existing_index(index, force)
    index_dir = index.resolve().parent
    records = []
    for case in cases:
        image_file = src / f"images{subset}" / f"{case}_0000{FILE_ENDING}"
        if labelled:
            label, geom = read_image(label_files[case])
            label = check_label_values(label, labels, label_files[case])
        else:
            label, geom = read_image(image_file)
        slices = [label] if label.ndim == 2 else list(label)
        for k, lab in enumerate(slices):
            if labelled and not all_slices and not lab.any():
                continue
            records.append(SliceRecord(
                case_id=case, patient_id=mrgen.get("patients", {}).get(case, case), slice_index=k,
                image_file=os.path.relpath(image_file.resolve(), index_dir),
                label_file=os.path.relpath(label_files[case].resolve(), index_dir) if labelled else None,
                modality=modality.key, attributes=modality.attributes, region=modality.region,
                organs=_organs(lab, labels) if labelled else [], labels=dict(labels) if labelled else {},
                spacing=[float(s) for s in geom.spacing[:2]], dataset=src.name))
    if not records:
        raise MRGenError("no slice has foreground", src, "pass --all-slices to index empty slices too")
    return write_index(records, index)
