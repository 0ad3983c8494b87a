"""Any folder tree of NIfTI images (with or without label maps) found by a pattern (patterns.py): `{id}` names the
case; `*`, `**`, `{split}`, `{sequence}` and other fields reach into sub-folders."""

from __future__ import annotations

import os
import re
from pathlib import Path

from mrgen_nnunet.data.prompts import load_modality_table, resolve_modality
from mrgen_nnunet.dataset_converters.common import load_pair, write_dataset, write_images_dataset
from mrgen_nnunet.dataset_converters.sources import parse_label_map, pattern_sources
from mrgen_nnunet.errors import MRGenError


def sequence_filter(sequence: str, key: str, table: dict[str, dict]):
    """For a pattern's `{sequence}` field: a value names the wanted sequence when it resolves to the same modality
    key, or equals `sequence` ignoring case, spaces, `-` and `_`."""
    def norm(text: str) -> str:
        return re.sub(r"[\s_\-]+", "", text).lower()

    def keep(value: str) -> bool:
        if norm(value) == norm(sequence):
            return True
        try:
            return resolve_modality(value, table).key == key
        except MRGenError:
            return False
    return keep


def convert_nifti(src: str | os.PathLike, out_raw: str | os.PathLike, dataset_id: int, name: str | None = None,
                  labels: str = "", sequence: str = "", pattern: str = "image_{id}.nii.gz",
                  label_pattern: str | None = None, images_only: bool = False, as_slices: bool = False,
                  all_slices: bool = False, index: str | os.PathLike | None = None, force: bool = False,
                  modality_table: str | os.PathLike | None = None) -> Path:
    """Images `src/pattern` (+ labels `src/label_pattern`, both relative, see patterns.py) -> nnU-Net dataset.

    Labelled (`labels` "name=int,..." given; `label_pattern` defaults to `label_{id}.nii.gz`): imagesTr + labelsTr
    as in `write_dataset`. Images only (`images_only`, or neither `labels` nor `label_pattern`): imagesTs and a
    label-less index (`write_images_dataset`). `sequence` is a modality name resolved through the modality table
    (e.g. `LGE`, `FLAIR`, `T1c`); a `{sequence}` field in the pattern keeps only files of that sequence. Case ids
    are `{sequence without punctuation}{id}`; numeric ids are zero-padded to 3 digits.
    """
    src = Path(src)
    if images_only and (labels or label_pattern):
        raise MRGenError("--images-only takes no label map or label pattern", "--images-only",
                         "drop --labels/--label-pattern, or drop --images-only to convert labelled images")
    images_only = images_only or (not labels and not label_pattern)
    if not images_only and not labels:
        raise MRGenError("no label map given", "--labels", "pass e.g. --labels liver=1,spleen=2, or --images-only")
    if not sequence:
        raise MRGenError("no modality given", "--sequence", "pass e.g. --sequence LGE")
    table = load_modality_table(modality_table)
    modality = resolve_modality(sequence, table, option="--sequence")
    label_map = parse_label_map(labels) if not images_only else None
    prefix = re.sub(r"[^A-Za-z0-9]", "", sequence)
    tag = name or f"NIfTI_{prefix}"
    sources = pattern_sources(src, pattern, prefix, lambda i, lab: load_pair(i, lab, label_map),
                              label_pattern=None if images_only else (label_pattern or "label_{id}.nii.gz"),
                              keep_sequence=sequence_filter(sequence, modality.key, table))
    if images_only:
        return write_images_dataset(sources, out_raw=out_raw, dataset_id=dataset_id, name=tag, modality=modality,
                                    channel_name=sequence, as_slices=as_slices, index=index, force=force,
                                    dataset_tag=tag)
    return write_dataset(sources, out_raw=out_raw, dataset_id=dataset_id, name=tag,
                         labels=label_map, modality=modality, channel_name=sequence, as_slices=as_slices,
                         all_slices=all_slices, index=index, force=force, dataset_tag=tag)
