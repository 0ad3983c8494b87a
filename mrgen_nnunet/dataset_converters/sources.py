"""How a converter finds its cases: the found case (`VolumeSource`, loaded as a `Volume`), patient lists, the
sequence a folder holds, label maps given on the command line, numbered files, pattern matches (patterns.py) and
the check that case ids are unique. Loading and writing the dataset are in common.py.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import Geometry
from mrgen_nnunet.data.nnunet_raw import check_labels
from mrgen_nnunet.errors import MRGenError


@dataclass
class Volume:
    """One loaded case: image (z, y, x) or (y, x) float32, label (same shape) uint8 or None, its geometry."""

    image: np.ndarray
    label: np.ndarray | None
    geometry: Geometry


@dataclass
class VolumeSource:
    """A case found by a converter; `load()` reads it (lazily, so the progress bar shows the real work)."""

    case_id: str  # e.g. "LGE021" (slices get "_z004" appended)
    patient_id: str  # e.g. "LGE/021"
    source: str  # file shown in messages and kept in the index
    load: Callable[[], Volume]


def parse_patients(spec: str | None, where: object = "--patients") -> set[int] | None:
    """`"1-20"`, `"1,3,5-7"` -> {1, ..., 20}; None or blank -> None (all). `where` is named in errors."""
    if spec is None or not spec.strip():
        return None
    wanted: set[int] = set()
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m:
            raise MRGenError(f"bad patient range {spec!r}", where, "use e.g. 1-20 or 1,3,5-7")
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise MRGenError(f"empty patient range {part.strip()!r}", where, "write the smaller id first")
        wanted.update(range(lo, hi + 1))
    return wanted


def sequence_of_folder(src: Path, sequence: str | None, aliases: dict[str, tuple[str, ...]], default: str) -> str:
    """The sequence to convert. A source folder named after a sequence (`.../LGE`, any case, `-`/`_` ignored) sets
    it, and an explicit `sequence` must agree; otherwise `sequence`, else `default`. `aliases`: sequence -> other
    folder names meaning it."""
    def norm(text: str) -> str:
        return re.sub(r"[\s_\-]+", "", text).lower()

    named = next((seq for seq, more in aliases.items() if norm(src.name) in {norm(a) for a in (seq, *more)}), None)
    if named is not None and sequence is not None and norm(sequence) != norm(named):
        raise MRGenError(f"the source folder holds the {named} sequence but --sequence is {sequence!r}", src,
                         f"drop --sequence or pass --sequence {named}")
    return sequence or named or default


def parse_label_map(spec: str) -> dict[str, int]:
    """`"myocardium=1,left ventricle=2"` -> {"background": 0, "myocardium": 1, ...} (must be contiguous)."""
    labels = {"background": 0}
    for part in spec.split(","):
        name, sep, value = part.partition("=")
        if not sep or not name.strip() or not value.strip().isdigit():
            raise MRGenError(f"cannot parse label entry {part.strip()!r}", "--labels", "use name=int,name=int")
        labels[name.strip()] = int(value)
    check_labels(labels, "--labels")
    return labels


def check_unique_case_ids(sources) -> None:
    """One-line error when two source files give the same case id (e.g. image_1 and image_01)."""
    first: dict[str, str] = {}
    for src in sources:
        if first.setdefault(src.case_id, src.source) != src.source:
            raise MRGenError(f"case id {src.case_id!r} also comes from {first[src.case_id]}", src.source,
                             "rename or remove one of the two files")


def numbered_files(folder: Path, prefix: str, suffix: str = ".nii.gz") -> dict[int, Path]:
    """{K: folder/prefixK.suffix} for files named like `image_12.nii.gz`; two files for one K (`image_1`,
    `image_01`) are an error."""
    found: dict[int, Path] = {}
    for p in sorted(folder.glob(f"{prefix}*{suffix}")):
        m = re.fullmatch(re.escape(prefix) + r"(\d+)" + re.escape(suffix), p.name)
        if m and found.setdefault(int(m.group(1)), p) != p:
            raise MRGenError(f"two files give case {int(m.group(1))}: {found[int(m.group(1))].name} and {p.name}", p,
                             "rename or remove one of them")
    return dict(sorted(found.items()))


def pattern_sources(src: str | os.PathLike, pattern: str, prefix: str, load: Callable[[Path, Path | None], Volume],
                    label_pattern: str | None = None, folders: bool = False,
                    keep_sequence: Callable[[str], bool] | None = None) -> list[VolumeSource]:
    """The cases `pattern` (patterns.py) finds under `src`, with their labels from `label_pattern` when given.

    Case ids are `{prefix}{id}`, patient ids `{prefix}/{id}`; ids must be unique over the tree. With a label
    pattern every image needs its label (some with and some without is an error naming the count). `keep_sequence`
    selects matches by their `{sequence}` value when the pattern has that field. `load(image, label)` reads a case.
    """
    from mrgen_nnunet.dataset_converters import patterns

    matches = patterns.match_paths(src, pattern, "--pattern", folders=folders)
    if keep_sequence is not None and "sequence" in patterns.fields_of(pattern):
        matches = patterns.select(matches, "sequence", keep_sequence, "--pattern/--sequence", src)
    cases = patterns.unique_ids(matches)
    labels = {cid: patterns.fill(label_pattern, m, src) for cid, m in cases.items()} if label_pattern else {}
    lacking = [cid for cid, lab in labels.items() if lab is None]
    if lacking:
        raise MRGenError(f"{len(lacking)} of {len(cases)} images have no label matching {label_pattern!r}, e.g. "
                         f"{cases[lacking[0]].path}", "--label-pattern",
                         "give every image its label, or convert the unlabelled ones separately with --images-only")
    if label_pattern:
        clash = [cid for cid, m in cases.items() if labels[cid].resolve() == m.path.resolve()]
        if clash:
            raise MRGenError(f"the label pattern names the image itself ({cases[clash[0]].path})", "--label-pattern",
                             "the image --pattern must not also match the label files")
    return [VolumeSource(f"{prefix}{cid}", f"{prefix}/{cid}", str(m.path),
                         lambda i=m.path, lab=labels.get(cid): load(i, lab)) for cid, m in cases.items()]
