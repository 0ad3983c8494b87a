"""`convert mrgen-db --workers 2` (process pool) writes the same dataset as one process, and errors in a pool
worker still reach the user as one line with nothing published."""

import json

import SimpleITK as sitk


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_workers_same_dataset_as_one(tmp_path, mrgen_db, cli):
    rc1, _ = cli("convert", "mrgen-db", mrgen_db, "--out-raw", tmp_path / "a", "--dataset-id", 31,
                 "--index", tmp_path / "a.jsonl")
    rc2, _ = cli("convert", "mrgen-db", mrgen_db, "--out-raw", tmp_path / "b", "--dataset-id", 31,
                 "--index", tmp_path / "b.jsonl", "--workers", "2")
    assert rc1 == rc2 == 0
    one, two = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert sorted(one) == sorted(two)
    assert len([k for k in one if k.endswith("_0000.nii.gz")]) == 4
    for key in one:  # NIfTI via SimpleITK: compare voxels, not gzip headers
        if key.endswith(".nii.gz"):
            a, b = (sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / r / key))) for r in ("a", "b"))
            assert (a == b).all(), key
        else:
            assert one[key] == two[key], key
    rows = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [r["case_id"] for r in rows] == ["TOY001_z000", "TOY001_z001", "TOY002_z000", "TOY002_z001"]


def test_worker_error_is_one_line_and_nothing_published(tmp_path, mrgen_db, cli):
    (mrgen_db / "conditional_dataset" / "TOY" / "2" / "001.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    rc, err = cli("convert", "mrgen-db", mrgen_db, "--out-raw", tmp_path / "raw", "--dataset-id", 31,
                  "--workers", "2")
    assert rc != 0
    assert len(err) == 1 and err[0].startswith("mrgen-nnunet: error: cannot read image") and "001.png" in err[0]
    assert not list((tmp_path / "raw").glob("Dataset031_*"))
    rc, err = cli("convert", "mrgen-db", mrgen_db, "--out-raw", tmp_path / "raw", "--dataset-id", 31,
                  "--workers", "0")
    assert rc != 0 and "--workers" in err[0]
