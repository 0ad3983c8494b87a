"""Bad inputs through the CLI: exit != 0, exactly one stderr line naming the culprit, no dataset left behind."""

import json
import os

import numpy as np
import pytest
from convert_helpers import nifti_pairs, write


def _no_dataset(raw):
    assert not raw.exists() or not any(raw.iterdir()), list(raw.iterdir())


def _ms(tmp_path, cli, *extra):
    raw = tmp_path / "raw"
    rc, err = cli("convert", "mscmrseg", tmp_path / "ms", "--out-raw", raw, "--dataset-id", 5, "--sequence", "LGE",
                  "--as-slices", *extra)
    return rc, err, raw


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_nifti(tmp_path, cli, damage):
    nifti_pairs(tmp_path / "ms" / "LGE", [1, 2])
    bad = tmp_path / "ms" / "LGE" / "image_2.nii.gz"
    bad.write_bytes(bad.read_bytes()[:60] if damage == "truncate" else b"not a nifti at all")
    rc, err, raw = _ms(tmp_path, cli)
    assert rc != 0 and len(err) == 1 and "image_2.nii.gz" in err[0] and err[0].startswith("mrgen-nnunet: error:")
    _no_dataset(raw)


@pytest.mark.parametrize("problem,needle", [("shape", "shape"), ("spacing", "spacing"), ("values", "label values [7]"),
                                            ("float", "non-integer")])
def test_label_mismatches(tmp_path, cli, problem, needle):
    nifti_pairs(tmp_path / "ms" / "LGE", [1, 2])
    lab = tmp_path / "ms" / "LGE" / "label_2.nii.gz"
    if problem == "shape":
        write(np.zeros((3, 16, 15), np.uint8), lab)
    elif problem == "spacing":
        write(np.zeros((3, 16, 16), np.uint8), lab, spacing=(2.0, 2.0, 5.0))
    elif problem == "values":
        arr = np.zeros((3, 16, 16), np.uint8)
        arr[1, 2, 2] = 7
        write(arr, lab)
    else:
        write(np.full((3, 16, 16), 0.5, np.float32), lab)
    rc, err, raw = _ms(tmp_path, cli)
    assert rc != 0 and len(err) == 1 and needle in err[0] and "label_2.nii.gz" in err[0], err
    _no_dataset(raw)


def test_empty_folder_and_missing_label(tmp_path, cli):
    (tmp_path / "ms" / "LGE").mkdir(parents=True)
    rc, err, raw = _ms(tmp_path, cli)
    assert rc != 0 and len(err) == 1 and "no image_K.nii.gz" in err[0]
    nifti_pairs(tmp_path / "ms" / "LGE", [1])
    (tmp_path / "ms" / "LGE" / "label_1.nii.gz").unlink()
    rc, err, raw = _ms(tmp_path, cli)
    assert rc != 0 and len(err) == 1 and "label_1.nii.gz" in err[0]
    _no_dataset(raw)


def test_non_contiguous_labels(tmp_path, cli):
    nifti_pairs(tmp_path / "n", [1])
    rc, err = cli("convert", "nifti", tmp_path / "n", "--out-raw", tmp_path / "raw", "--dataset-id", 3,
                  "--labels", "liver=1,spleen=3", "--sequence", "T2-SPIR")
    assert rc != 0 and len(err) == 1 and "contiguous" in err[0] and "--labels" in err[0]
    _no_dataset(tmp_path / "raw")


def test_existing_id_refused_then_replaced(tmp_path, cli):
    nifti_pairs(tmp_path / "ms" / "LGE", [1, 2])
    raw = tmp_path / "raw"
    (raw / "Dataset005_Other" / "imagesTr").mkdir(parents=True)
    rc, err, _ = _ms(tmp_path, cli)
    assert rc != 0 and len(err) == 1 and "Dataset005_Other" in err[0] and "--force" in err[0]
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset005_Other"]
    rc, err, _ = _ms(tmp_path, cli, "--force")
    assert rc == 0, err
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset005_MSCMR_LGE"]


def test_corrupt_png_and_dicom(tmp_path, chaos_dicom, cli):
    patient = chaos_dicom / "Train_Sets" / "MR" / "2" / "T2SPIR"
    png = sorted((patient / "Ground").glob("*.png"))[1]
    png.write_bytes(png.read_bytes()[:30])
    raw = tmp_path / "raw"
    rc, err = cli("convert", "chaos", chaos_dicom, "--out-raw", raw, "--dataset-id", 9)
    assert rc != 0 and len(err) == 1 and png.name in err[0], err
    _no_dataset(raw)
    dcm = sorted((patient / "DICOM_anon").glob("*.dcm"))[1]
    dcm.write_bytes(dcm.read_bytes()[:200])
    rc, err = cli("convert", "chaos", chaos_dicom, "--out-raw", raw, "--dataset-id", 9)
    assert rc != 0 and len(err) == 1 and "DICOM" in err[0] and "/2/T2SPIR/DICOM_anon" in err[0], err
    _no_dataset(raw)


def test_chaos_unknown_grey_level(tmp_path, chaos_dicom, cli):
    import SimpleITK as sitk

    png = sorted((chaos_dicom / "Train_Sets" / "MR" / "1" / "T2SPIR" / "Ground").glob("*.png"))[2]
    arr = np.zeros((24, 20), np.uint8)
    arr[5, 5] = 90
    sitk.WriteImage(sitk.GetImageFromArray(arr), str(png))
    rc, err = cli("convert", "chaos", chaos_dicom, "--out-raw", tmp_path / "raw", "--dataset-id", 9)
    assert rc != 0 and len(err) == 1 and "[90]" in err[0] and png.name in err[0]
    _no_dataset(tmp_path / "raw")


def _edit_db(root, change):
    path = root / "conditional_dataset" / "TOY_all.json"
    records = json.loads(path.read_text(encoding="utf-8"))
    change(records)
    path.write_text(json.dumps(records))


@pytest.mark.parametrize("value", ["../../etc/passwd", "/etc/passwd", "link/0.png"])
def test_mrgen_db_paths_escaping_root(tmp_path, mrgen_db, cli, value):
    os.symlink("/etc", mrgen_db / "link")
    _edit_db(mrgen_db, lambda r: r[1].update(image_path=value))
    rc, err = cli("convert", "mrgen-db", mrgen_db, "--out-raw", tmp_path / "raw", "--dataset-id", 8)
    assert rc != 0 and len(err) == 1 and value in err[0] and "TOY_all.json:record 1" in err[0], err
    assert "escapes" in err[0] or "absolute" in err[0]
    _no_dataset(tmp_path / "raw")


def test_mrgen_db_missing_field_and_files(tmp_path, mrgen_db, cli):
    _edit_db(mrgen_db, lambda r: r[2].pop("mask1_path"))
    rc, err = cli("convert", "mrgen-db", mrgen_db, "--out-raw", tmp_path / "raw", "--dataset-id", 8)
    assert rc != 0 and len(err) == 1 and "mask1_path" in err[0] and "record 2" in err[0]
    _no_dataset(tmp_path / "raw")
    _edit_db(mrgen_db, lambda r: r[2].update(mask1_path=r[3]["mask1_path"], image_path="./gone.png"))
    rc, err = cli("convert", "mrgen-db", mrgen_db, "--out-raw", tmp_path / "raw", "--dataset-id", 8, "--strict")
    assert rc != 0 and len(err) == 1 and "gone.png" in err[0]
    _no_dataset(tmp_path / "raw")
    rc, err = cli("convert", "mrgen-db", mrgen_db, "--out-raw", tmp_path / "raw", "--dataset-id", 8)
    assert rc == 0 and any("skipped 1 record" in e for e in err)
    assert len(list((tmp_path / "raw" / "Dataset008_TOY" / "imagesTr").iterdir())) == 3
    (mrgen_db / "conditional_dataset" / "TOY_all.json").write_text("[{")
    rc, err = cli("convert", "mrgen-db", mrgen_db, "--out-raw", tmp_path / "raw2", "--dataset-id", 8)
    assert rc != 0 and len(err) == 1 and "invalid JSON" in err[0] and "TOY_all.json" in err[0]
