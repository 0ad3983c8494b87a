"""nnU-Net v2 raw dataset folders: names, lookup, staged (all-or-nothing) creation and dataset.json.

A dataset is built in a hidden temporary sibling folder and renamed into place only when everything was written,
so a failed conversion never leaves a half-written `DatasetNNN_NAME` behind. An existing dataset id (any name) is
refused unless `force=True`; with force the old folder is replaced (moved aside, new one renamed in, old removed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mrgen_nnunet.errors import MRGenError

FILE_ENDING = ".nii.gz"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


def dataset_folder_name(dataset_id: int, name: str, option: str = "--dataset-id") -> str:
    """`Dataset{id:03d}_{name}`; id 1..999 (`option` names the id's flag in errors), name letters/digits/`_`/`-`."""
    if not isinstance(dataset_id, int) or not 1 <= dataset_id <= 999:
        raise MRGenError(f"dataset id must be an integer 1..999, got {dataset_id!r}", option,
                         "pick a free id such as 501")
    if not _NAME.match(name or ""):
        raise MRGenError(f"dataset name {name!r} must contain only letters, digits, '_' and '-'", "--name",
                         "choose a name like MSCMR_LGE")
    return f"Dataset{dataset_id:03d}_{name}"


def datasets_with_id(raw_root: Path, dataset_id: int) -> list[Path]:
    """The `DatasetNNN_*` folders of this id in `raw_root` (any name), sorted; [] when `raw_root` is absent."""
    if not raw_root.is_dir():
        return []
    return sorted(p for p in raw_root.glob(f"Dataset{dataset_id:03d}_*") if p.is_dir())


def find_dataset(raw_root: str | os.PathLike, id_or_name: int | str) -> Path:
    """The folder of a dataset in `raw_root` given `101`, `"101"`, `"Dataset101_X"` or `"X"`.

    Raises MRGenError when it is absent or when several folders match.
    """
    raw_root = Path(raw_root)
    if not raw_root.is_dir():
        raise MRGenError("nnU-Net raw folder not found", raw_root, "set --raw / nnUNet_raw to an existing folder")
    text = str(id_or_name)
    if text.isdigit():
        matches = datasets_with_id(raw_root, int(text))
    elif text.startswith("Dataset"):
        matches = [raw_root / text] if (raw_root / text).is_dir() else []
    else:
        matches = sorted(p for p in raw_root.glob(f"Dataset[0-9][0-9][0-9]_{text}") if p.is_dir())
    if not matches:
        known = ", ".join(sorted(p.name for p in raw_root.glob("Dataset*") if p.is_dir())) or "none"
        raise MRGenError(f"dataset {text!r} not found", raw_root, f"known datasets: {known}")
    if len(matches) > 1:
        raise MRGenError(f"dataset {text!r} is ambiguous: {', '.join(p.name for p in matches)}", raw_root,
                         "remove the duplicate or name the full folder")
    return matches[0]


@contextmanager
def staged_dataset(raw_root: str | os.PathLike, dataset_id: int, name: str, force: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it becomes `raw_root/DatasetNNN_NAME`, on error it is removed.

    Refuses (MRGenError) when a dataset with this id exists (any name) unless `force`; with `force` the existing
    folder(s) with this id are replaced only after the new dataset is complete.
    """
    raw_root = Path(raw_root)
    final = raw_root / dataset_folder_name(dataset_id, name)
    refuse_existing(raw_root, dataset_id, force)
    raw_root.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(raw_root, dataset_id)
    tmp = raw_root / f".{final.name}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        publish_dataset(tmp, final, dataset_id, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish_dataset(folder: Path, final: Path, dataset_id: int, force: bool, option: str = "--dataset-id") -> Path:
    """Rename the finished `folder` (a hidden sibling) to `final` (`raw_root/DatasetNNN_NAME`): refused when a
    dataset with this id exists unless `force`; with `force` the old folder(s) are moved aside, the new one renamed
    in, the old removed. `option` names the id's flag in the refusal."""
    raw_root = final.parent
    refuse_existing(raw_root, dataset_id, force, option)
    old = datasets_with_id(raw_root, dataset_id)
    trash = [raw_root / f".{p.name}.old-{uuid.uuid4().hex[:8]}" for p in old]
    for p, t in zip(old, trash, strict=True):
        os.replace(p, t)
    os.replace(folder, final)
    for t in trash:
        shutil.rmtree(t, ignore_errors=True)
    return final


def _remove_stale_staging(raw_root: Path, dataset_id: int) -> None:
    """Remove staging folders of this dataset id left by a killed run: `.DatasetNNN_*.tmp-<host>-<pid>-<hex>` whose
    process on this host is gone (or in the older `.tmp-<hex>` form). A live conversion's folder is kept."""
    for p in raw_root.glob(f".Dataset{dataset_id:03d}_*.tmp-*"):
        host, _, pid = p.name.rsplit(".tmp-", 1)[1].rpartition("-")[0].rpartition("-")
        if not pid.isdigit() or (host == socket.gethostname() and not process_alive(int(pid))):
            shutil.rmtree(p, ignore_errors=True)


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (a stale lock or staging folder may be removed otherwise)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def refuse_existing(raw_root: Path, dataset_id: int, force: bool, option: str = "--dataset-id") -> None:
    """MRGenError when a dataset with this id (any name) is in `raw_root` and not `force`."""
    existing = datasets_with_id(raw_root, dataset_id)
    if existing and not force:
        raise MRGenError(f"dataset id {dataset_id} is already used by {existing[0].name}", raw_root,
                         f"choose another {option} or pass --force to replace it")


def mrgen_key(modality: str, kind: str, patients: dict[str, str], synthetic_cases: list[str] | None = None,
              real_to_synthetic_ratio: float | None = None, provenance: str | None = None) -> dict:
    """The `"mrgen"` dataset.json entry of CONTRACTS §2. `kind` is "slices" or "volumes"."""
    if kind not in ("slices", "volumes"):
        raise ValueError(f"kind must be 'slices' or 'volumes', got {kind!r}")
    return {"modality": modality, "kind": kind, "patients": dict(patients),
            "synthetic_cases": list(synthetic_cases or []), "real_to_synthetic_ratio": real_to_synthetic_ratio,
            "provenance": provenance}


def write_dataset_json(folder: str | os.PathLike, labels: dict[str, int], channel_names: dict[str, str],
                       num_training: int, extra: dict | None = None, dataset_name: str | None = None) -> Path:
    """Write `folder/dataset.json` with nnunetv2's `generate_dataset_json` plus the keys of `extra`
    (normally `{"mrgen": mrgen_key(...)}`). Labels must be contiguous from background=0."""
    from nnunetv2.dataset_conversion.generate_dataset_json import generate_dataset_json

    folder = Path(folder)
    check_labels(labels, folder / "dataset.json")
    generate_dataset_json(str(folder), dict(channel_names), dict(labels), int(num_training), FILE_ENDING,
                          dataset_name=dataset_name, license="see the source dataset's licence",
                          converted_by="mrgen-nnunet", **(extra or {}))
    return folder / "dataset.json"


def check_labels(labels: dict[str, int], where: object) -> None:
    """Labels must be {"background": 0, ...} with values 0..K, each used once (nnU-Net requires contiguity)."""
    values = sorted(int(v) for v in labels.values())
    if labels.get("background") != 0 or values != list(range(len(values))):
        raise MRGenError(f"label map {labels} is not contiguous 0..K with background=0", where,
                         "renumber the labels, e.g. --labels liver=1,spleen=2")


def read_dataset_json(folder: str | os.PathLike) -> dict:
    """The parsed `folder/dataset.json` (MRGenError when missing or invalid)."""
    path = Path(folder) / "dataset.json"
    if not path.is_file():
        raise MRGenError("dataset.json not found", path, "is this an nnU-Net raw dataset folder?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise MRGenError(f"invalid JSON: {exc.msg} at line {exc.lineno}", path, "fix or regenerate it") from None


def list_cases(folder: str | os.PathLike, subset: str = "Tr") -> list[str]:
    """Sorted case ids in `folder/images{subset}` (files `CASE_0000.nii.gz`)."""
    images = Path(folder) / f"images{subset}"
    if not images.is_dir():
        return []
    suffix = "_0000" + FILE_ENDING
    return sorted(p.name[: -len(suffix)] for p in images.iterdir() if p.name.endswith(suffix))
