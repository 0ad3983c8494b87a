"""Slice records and the generator index (one JSON object per line).

A record describes one 2D slice: where its pixels are (`image_file`, `slice_index` for 3D files), its label
(optional), and the text condition (modality key, attributes, region, organs present). Relative paths in an index
are resolved against the index file's folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import extract_slice, read_image, write_text_atomic
from mrgen_nnunet.errors import MRGenError


@dataclass
class SliceRecord:
    """One 2D slice of the generator index."""

    case_id: str  # volume/case id, e.g. "bSSFP_001"
    patient_id: str  # groups cases of one person (splits group by this)
    slice_index: int  # axial index into a 3D image_file; 0 for 2D files
    image_file: str  # NIfTI/PNG/JPEG; absolute, or relative to the index folder
    modality: str  # modality key, e.g. "LGE Cardiac MRI"
    label_file: str | None = None  # integer label map on the same grid, or None (image–text only)
    attributes: str = ""  # modality attribute phrase for the prompt
    region: str = ""  # e.g. "Heart"
    organs: list[str] = field(default_factory=list)  # organs present in this slice (names of `labels`)
    labels: dict[str, int] = field(default_factory=dict)  # label map name -> value, "background": 0 included
    spacing: list[float] = field(default_factory=list)  # in-plane spacing (x, y) in mm
    dataset: str = ""  # source dataset name, e.g. "MSCMR_bSSFP"

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict, where: object = None) -> SliceRecord:
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("case_id", "patient_id", "slice_index", "image_file", "modality") if k not in d]
        if missing:
            raise MRGenError(f"index record lacks field(s) {', '.join(missing)}", where,
                             "rebuild the index with `mrgen-nnunet convert ... --index`")
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def has_label(self) -> bool:
        return self.label_file is not None


def write_index(records: list[SliceRecord], path: str | os.PathLike) -> Path:
    """Write records as JSONL atomically."""
    return write_text_atomic("".join(r.to_json() + "\n" for r in records), path)


def refuse_existing_index(path: str | os.PathLike | None, force: bool) -> None:
    """An existing index file is replaced only with `force` (like a dataset); a folder or other non-file never."""
    if path is None:
        return
    path = Path(path)
    if path.exists() and not path.is_file():
        raise MRGenError("the index path is not a file", f"--index {path}", "pass a file path such as out/index.jsonl")
    if path.exists() and not force:
        raise MRGenError("index file already exists", path, "choose another --index or pass --force to replace it")


def read_index(path: str | os.PathLike) -> list[SliceRecord]:
    """Read a JSONL index; relative file paths become absolute (against the index's folder)."""
    path = Path(path)
    if not path.is_file():
        raise MRGenError("index file not found", path, "create it with `mrgen-nnunet convert ... --index FILE`")
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MRGenError(f"invalid JSON on line {n}: {exc.msg}", path, "fix or regenerate the index") from None
        rec = SliceRecord.from_dict(d, where=f"{path}:{n}")
        rec.image_file = str((path.parent / rec.image_file).resolve())
        if rec.label_file is not None:
            rec.label_file = str((path.parent / rec.label_file).resolve())
        records.append(rec)
    if not records:
        raise MRGenError("index is empty", path, "convert a dataset with `--index` first")
    return records


def load_slice(record: SliceRecord) -> tuple[np.ndarray, np.ndarray | None]:
    """Pixels of one record: ((H, W) float32 image, (H, W) uint8 label map or None)."""
    image, _ = read_image(record.image_file)
    if image.ndim not in (2, 3):
        raise MRGenError(f"image is {image.ndim}D, expected a 2D slice or 3D volume", record.image_file,
                         "split 4D / multi-channel images into 3D volumes first")
    image = extract_slice(image, record.slice_index).astype(np.float32)
    if not np.isfinite(image).all():
        raise MRGenError("image has NaN/Inf values", record.image_file, "clean the image or drop it from the index")
    label = None
    if record.label_file is not None:
        lab, _ = read_image(record.label_file)
        label = extract_slice(lab, record.slice_index)
        if label.shape != image.shape:
            raise MRGenError(f"label shape {label.shape} differs from image shape {image.shape}",
                             record.label_file, "image and label must share one grid")
        label = label.astype(np.uint8)
    return image, label
