import json

import pytest

from mrgen_nnunet.data.nnunet_raw import (
    dataset_folder_name,
    find_dataset,
    list_cases,
    mrgen_key,
    read_dataset_json,
    staged_dataset,
    write_dataset_json,
)
from mrgen_nnunet.errors import MRGenError


def _make(raw, did, name, force=False, marker="a"):
    with staged_dataset(raw, did, name, force=force) as tmp:
        (tmp / "imagesTr").mkdir()
        (tmp / "imagesTr" / "c1_0000.nii.gz").write_text(marker)
        write_dataset_json(tmp, {"background": 0, "x": 1}, {"0": "LGE"}, 1,
                           extra={"mrgen": mrgen_key("LGE Cardiac MRI", "slices", {"c1": "LGE/001"})})
    return raw / dataset_folder_name(did, name)


def test_staged_success_and_json(tmp_path):
    folder = _make(tmp_path, 101, "Test")
    assert folder.name == "Dataset101_Test"
    d = read_dataset_json(folder)
    assert d["labels"] == {"background": 0, "x": 1} and d["file_ending"] == ".nii.gz"
    assert d["mrgen"]["patients"] == {"c1": "LGE/001"} and d["mrgen"]["synthetic_cases"] == []
    assert list_cases(folder) == ["c1"]
    assert find_dataset(tmp_path, 101) == folder == find_dataset(tmp_path, "Test") == find_dataset(tmp_path, "Dataset101_Test")
    assert [p.name for p in tmp_path.iterdir()] == ["Dataset101_Test"]


def test_error_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with staged_dataset(tmp_path, 5, "X") as tmp:
            (tmp / "f").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_id_refused_then_forced(tmp_path):
    _make(tmp_path, 7, "Old", marker="old")
    with pytest.raises(MRGenError, match="already used by Dataset007_Old"):
        _make(tmp_path, 7, "New")
    new = _make(tmp_path, 7, "New", force=True, marker="new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset007_New"]
    assert (new / "imagesTr" / "c1_0000.nii.gz").read_text(encoding="utf-8") == "new"
    # a failing forced rebuild keeps the old dataset
    with pytest.raises(RuntimeError):
        with staged_dataset(tmp_path, 7, "New", force=True):
            raise RuntimeError("boom")
    assert (new / "imagesTr" / "c1_0000.nii.gz").read_text(encoding="utf-8") == "new"


def test_bad_names_and_labels(tmp_path):
    with pytest.raises(MRGenError):
        dataset_folder_name(1000, "x")
    with pytest.raises(MRGenError):
        dataset_folder_name(1, "bad name/")
    with pytest.raises(MRGenError, match="contiguous"):
        write_dataset_json(tmp_path, {"background": 0, "a": 2}, {"0": "T2"}, 1)
    with pytest.raises(MRGenError, match="not found"):
        find_dataset(tmp_path, 3)
    (tmp_path / "dataset.json").write_text("{")
    with pytest.raises(MRGenError, match="invalid JSON"):
        read_dataset_json(tmp_path)
    assert json.loads(json.dumps(mrgen_key("m", "volumes", {})))["kind"] == "volumes"


def test_rerun_removes_staging_left_by_a_killed_run(tmp_path):
    """A kill leaves `.DatasetNNN_*.tmp-<host>-<pid>-<hex>`; the next run of that id removes it when the pid is gone
    (and the older `.tmp-<hex>` form), keeps a live process's folder and other ids' folders."""
    import os
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    stale = [tmp_path / f".Dataset005_X.tmp-{host}-{int(dead.stdout)}-0a1b2c3d", tmp_path / ".Dataset005_Y.tmp-deadbeef"]
    kept = [tmp_path / f".Dataset005_X.tmp-{host}-{os.getpid()}-11111111", tmp_path / ".Dataset006_X.tmp-deadbeef"]
    for p in stale + kept:
        (p / "imagesTr").mkdir(parents=True)
    _make(tmp_path, 5, "X")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["Dataset005_X"] + [p.name for p in kept])
