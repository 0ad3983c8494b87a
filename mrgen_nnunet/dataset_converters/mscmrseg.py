"""MS-CMRSeg 2019 (SLAug/CSDG preprocessing): `ROOT/{bSSFP,LGE}/image_K.nii.gz` + `label_K.nii.gz`.

Labels 1 myocardium, 2 left ventricle, 3 right ventricle. One sequence per dataset (`sequence`).
"""

from __future__ import annotations

import os
from pathlib import Path

from mrgen_nnunet.data.prompts import resolve_modality
from mrgen_nnunet.dataset_converters.common import load_pair, write_dataset
from mrgen_nnunet.dataset_converters.sources import (
    VolumeSource,
    numbered_files,
    parse_patients,
    sequence_of_folder,
)
from mrgen_nnunet.errors import MRGenError

LABELS = {"background": 0, "myocardium": 1, "left ventricle": 2, "right ventricle": 3}
SEQUENCES = ("bSSFP", "LGE")


def convert_mscmrseg(src: str | os.PathLike, out_raw: str | os.PathLike, dataset_id: int, name: str | None = None,
                     sequence: str | None = None, patients: str | None = None, as_slices: bool = False,
                     all_slices: bool = False, index: str | os.PathLike | None = None, force: bool = False,
                     modality_table: str | os.PathLike | None = None) -> Path:
    """Convert one MS-CMRSeg sequence. `src` is the root holding `bSSFP/` and `LGE/`, or a sequence folder (which
    sets the sequence; `sequence` must then agree). Default sequence for the root: bSSFP.

    Case ids `{sequence}{K:03d}` (volumes) or `{sequence}{K:03d}_z{k:03d}` (slices); patient id `{sequence}/{K:03d}`.
    """
    src = Path(src)
    sequence = sequence_of_folder(src, sequence, {s: () for s in SEQUENCES}, "bSSFP")
    if sequence not in SEQUENCES:
        raise MRGenError(f"unknown MS-CMRSeg sequence {sequence!r}", "--sequence", f"choose one of {', '.join(SEQUENCES)}")
    folder = src / sequence if (src / sequence).is_dir() else src
    if not folder.is_dir():
        raise MRGenError("source folder not found", src, "pass the MS-CMRSeg root holding bSSFP/ and LGE/")
    images = numbered_files(folder, "image_")
    wanted = parse_patients(patients)
    if wanted is not None:
        missing = sorted(wanted - set(images))
        if missing:
            raise MRGenError(f"patients {missing} not found", folder, "check --patients")
        images = {k: v for k, v in images.items() if k in wanted}
    if not images:
        raise MRGenError(f"no image_K.nii.gz files for {sequence}", folder, "pass the MS-CMRSeg root folder")
    sources = []
    for k, image in images.items():
        label = folder / f"label_{k}.nii.gz"
        if not label.is_file():
            raise MRGenError("label file missing", label, "every image_K.nii.gz needs its label_K.nii.gz")
        sources.append(VolumeSource(f"{sequence}{k:03d}", f"{sequence}/{k:03d}", str(image),
                                    lambda i=image, lab=label: load_pair(i, lab, LABELS)))
    return write_dataset(sources, out_raw=out_raw, dataset_id=dataset_id, name=name or f"MSCMR_{sequence}",
                         labels=LABELS, modality=resolve_modality(sequence, modality_table, option="--sequence"), channel_name=sequence,
                         as_slices=as_slices, all_slices=all_slices, index=index, force=force,
                         dataset_tag=f"MSCMR_{sequence}", description=f"MS-CMRSeg 2019 {sequence} (Zhuang 2019)")
