"""Any folder of NIfTI image/label pairs matched by a file-name pattern with an `{id}` placeholder."""

from __future__ import annotations

import os
import re
from pathlib import Path

from mrgen_nnunet.data.prompts import resolve_modality
from mrgen_nnunet.dataset_converters.common import VolumeSource, load_pair, parse_label_map, write_dataset
from mrgen_nnunet.errors import MRGenError


def convert_nifti(src: str | os.PathLike, out_raw: str | os.PathLike, dataset_id: int, name: str | None = None,
                  labels: str = "", sequence: str = "", pattern: str = "image_{id}.nii.gz",
                  label_pattern: str = "label_{id}.nii.gz", as_slices: bool = False, all_slices: bool = False,
                  index: str | os.PathLike | None = None, force: bool = False,
                  modality_table: str | os.PathLike | None = None) -> Path:
    """Pairs `src/pattern` + `src/label_pattern` (both relative, with `{id}`), labels from `"name=int,..."`.

    `sequence` is a modality name resolved through the alias table (e.g. `LGE`, `T2-SPIR`). Case ids are
    `{sequence short}{id}`; ids that are numbers are zero-padded to 3 digits.
    """
    src = Path(src)
    if "{id}" not in pattern or "{id}" not in label_pattern:
        raise MRGenError("patterns must contain {id}", "--pattern/--label-pattern", "e.g. image_{id}.nii.gz")
    if not labels:
        raise MRGenError("no label map given", "--labels", "pass e.g. --labels liver=1,spleen=2")
    if not sequence:
        raise MRGenError("no modality given", "--sequence", "pass e.g. --sequence LGE")
    label_map = parse_label_map(labels)
    modality = resolve_modality(sequence, modality_table)
    if not src.is_dir():
        raise MRGenError("source folder not found", src, "check the path")
    regex = re.compile(re.escape(pattern).replace(re.escape("{id}"), r"([A-Za-z0-9\-]+)") + "$")
    prefix = re.sub(r"[^A-Za-z0-9]", "", sequence)
    sources = []
    for image in sorted(src.glob(pattern.replace("{id}", "*"))):
        m = regex.search(image.relative_to(src).as_posix())
        if not m:
            continue
        pid = m.group(1)
        pid_text = f"{int(pid):03d}" if pid.isdigit() else pid
        label = src / label_pattern.replace("{id}", pid)
        if not label.is_file():
            raise MRGenError("label file missing", label, "every image needs a label matching --label-pattern")
        sources.append(VolumeSource(f"{prefix}{pid_text}", f"{prefix}/{pid_text}", str(image),
                                    lambda i=image, lab=label: load_pair(i, lab, label_map)))
    if not sources:
        raise MRGenError(f"no file matches {pattern!r}", src, "check --pattern")
    return write_dataset(sources, out_raw=out_raw, dataset_id=dataset_id, name=name or f"NIfTI_{prefix}",
                         labels=label_map, modality=modality, channel_name=sequence, as_slices=as_slices,
                         all_slices=all_slices, index=index, force=force, dataset_tag=name or f"NIfTI_{prefix}")
