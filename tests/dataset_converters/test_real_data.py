"""Converters on the real files in ../shared/data (2-3 patients), verified with nnU-Net's integrity check."""

import numpy as np
import SimpleITK as sitk
from convert_helpers import verify

from mrgen_nnunet.data.nnunet_raw import list_cases, read_dataset_json
from mrgen_nnunet.data.records import load_slice, read_index


def test_mscmrseg_real(shared_data, tmp_path, cli):
    raw, idx = tmp_path / "raw", tmp_path / "bssfp.jsonl"
    rc, err = cli("convert", "mscmrseg", shared_data / "mscmrseg", "--out-raw", raw, "--dataset-id", 101,
                  "--sequence", "bSSFP", "--patients", "1-2", "--as-slices", "--index", idx)
    assert rc == 0, err
    folder = raw / "Dataset101_MSCMR_bSSFP"
    cases = list_cases(folder)
    assert cases[0] == "bSSFP001_z001" and all(c.startswith(("bSSFP001_", "bSSFP002_")) for c in cases)
    src = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_data / "mscmrseg" / "bSSFP" / "image_1.nii.gz")))
    out = sitk.ReadImage(str(folder / "imagesTr" / "bSSFP001_z003_0000.nii.gz"))
    assert np.allclose(sitk.GetArrayFromImage(out), src[3]) and np.allclose(out.GetSpacing(), (1.25, 1.25))
    verify(folder)
    recs = read_index(idx)
    assert len(recs) == len(cases) and {r.patient_id for r in recs} == {"bSSFP/001", "bSSFP/002"}
    image, label = load_slice(recs[0])
    assert image.shape == (192, 192) and label.max() <= 3

    rc, err = cli("convert", "mscmrseg", shared_data / "mscmrseg", "--out-raw", raw, "--dataset-id", 103,
                  "--sequence", "LGE", "--patients", "21-22")
    assert rc == 0, err
    assert list_cases(raw / "Dataset103_MSCMR_LGE") == ["LGE021", "LGE022"]
    assert read_dataset_json(raw / "Dataset103_MSCMR_LGE")["mrgen"]["kind"] == "volumes"
    verify(raw / "Dataset103_MSCMR_LGE")


def test_chaos_real_nifti(shared_data, tmp_path, cli):
    raw = tmp_path / "raw"
    rc, err = cli("convert", "chaos", shared_data / "chaos_t2spir", "--out-raw", raw, "--dataset-id", 61,
                  "--patients", "1,2", "--as-slices")
    assert rc == 0, err
    folder = raw / "Dataset061_CHAOS_T2SPIR"
    assert read_dataset_json(folder)["labels"]["spleen"] == 4
    verify(folder)


def test_mrgen_db_real_sample(shared_data, tmp_path, cli):
    root = shared_data / "mrgen_db_sample"
    raw, idx = tmp_path / "raw", tmp_path / "db.jsonl"
    rc, err = cli("convert", "mrgen-db", root, "--out-raw", raw, "--dataset-id", 71, "--subset", "CHAOS_MRI_T2_SPIR",
                  "--index", idx)
    assert rc == 0, err
    recs = read_index(idx)
    assert recs[0].modality == "T2 SPIR Abdomen MRI" and recs[0].region == "Upper Abdominal Region"
    assert recs[0].labels == {"background": 0, "liver": 1, "right kidney": 2, "left kidney": 3, "spleen": 4}
    verify(raw / "Dataset071_CHAOS_MRI_T2_SPIR")
    rc, err = cli("convert", "mrgen-db-images", root, "--index", tmp_path / "rp.jsonl")
    assert rc == 0, err
    assert all(r.label_file is None for r in read_index(tmp_path / "rp.jsonl"))
