"""Each converter on a synthetic miniature of its layout, checked by nnU-Net's verify_dataset_integrity."""

import json

import numpy as np
import SimpleITK as sitk
from convert_helpers import nifti_pairs, verify

from mrgen_nnunet.data.nnunet_raw import list_cases, read_dataset_json
from mrgen_nnunet.data.records import load_slice, read_index


def test_mscmrseg_slices_and_volumes(tmp_path, cli):
    nifti_pairs(tmp_path / "ms" / "LGE", [1, 2, 3])
    raw, idx = tmp_path / "raw", tmp_path / "idx" / "lge.jsonl"
    rc, err = cli("convert", "mscmrseg", tmp_path / "ms", "--out-raw", raw, "--dataset-id", 102, "--sequence", "LGE",
                  "--patients", "1-2", "--as-slices", "--index", idx)
    assert rc == 0, err
    folder = raw / "Dataset102_MSCMR_LGE"
    # slice 0 is empty -> only z001, z002 per patient
    assert list_cases(folder) == ["LGE001_z001", "LGE001_z002", "LGE002_z001", "LGE002_z002"]
    meta = read_dataset_json(folder)
    assert meta["mrgen"]["kind"] == "slices" and meta["mrgen"]["patients"]["LGE002_z001"] == "LGE/002"
    assert meta["channel_names"] == {"0": "LGE"} and meta["labels"]["right ventricle"] == 3
    img = sitk.ReadImage(str(folder / "imagesTr" / "LGE001_z002_0000.nii.gz"))
    assert img.GetDimension() == 2 and img.GetSpacing() == (1.25, 1.25)
    assert img.GetOrigin() == (0.0, 0.0)  # 2D origin: the in-plane part of slice 2's origin
    verify(folder)
    recs = read_index(idx)
    assert len(recs) == 4 and recs[0].modality == "LGE Cardiac MRI" and recs[0].organs
    image, label = load_slice(recs[0])
    assert image.shape == label.shape == (16, 16) and set(np.unique(label)) <= {0, 1, 2, 3}

    rc, err = cli("convert", "mscmrseg", tmp_path / "ms", "--out-raw", raw, "--dataset-id", 103, "--sequence", "LGE",
                  "--patients", "3")
    assert rc == 0, err
    vol = raw / "Dataset103_MSCMR_LGE"
    assert list_cases(vol) == ["LGE003"] and read_dataset_json(vol)["mrgen"]["kind"] == "volumes"
    assert sitk.ReadImage(str(vol / "imagesTr" / "LGE003_0000.nii.gz")).GetSpacing() == (1.25, 1.25, 5.0)
    verify(vol)


def test_mscmrseg_sequence_folder_sets_the_sequence(tmp_path, cli):
    """`convert mscmrseg ROOT/LGE` without --sequence converts LGE (it used to write the images as bSSFP)."""
    nifti_pairs(tmp_path / "ms" / "LGE", [1])
    rc, err = cli("convert", "mscmrseg", tmp_path / "ms" / "LGE", "--out-raw", tmp_path / "raw", "--dataset-id", 104)
    assert rc == 0, err
    folder = tmp_path / "raw" / "Dataset104_MSCMR_LGE"
    meta = read_dataset_json(folder)
    assert list_cases(folder) == ["LGE001"] and meta["channel_names"] == {"0": "LGE"}
    assert meta["mrgen"]["modality"] == "LGE Cardiac MRI"


def test_chaos_dicom_and_nifti(tmp_path, chaos_dicom, cli):
    raw, idx = tmp_path / "raw", tmp_path / "chaos.jsonl"
    rc, err = cli("convert", "chaos", chaos_dicom, "--out-raw", raw, "--dataset-id", 11, "--index", idx)
    assert rc == 0, err
    folder = raw / "Dataset011_CHAOS_T2SPIR"
    assert list_cases(folder) == ["T2SPIR001", "T2SPIR002"]
    label = sitk.ReadImage(str(folder / "labelsTr" / "T2SPIR001.nii.gz"))
    assert label.GetSpacing() == (1.5, 1.5, 5.0)
    arr = sitk.GetArrayFromImage(label)
    assert arr.shape == (3, 24, 20) and not arr[0].any()
    assert arr[1, 3, 3] == 1 and arr[1, 10, 3] == 2 and arr[1, 15, 3] == 3 and arr[1, 3, 11] == 4
    assert read_index(idx)[0].organs == ["liver", "right kidney", "left kidney", "spleen"]
    verify(folder)

    nifti_pairs(tmp_path / "nii", [1, 5], n_labels=4)
    rc, err = cli("convert", "chaos", tmp_path / "nii", "--out-raw", raw, "--dataset-id", 12, "--as-slices",
                  "--patients", "5")
    assert rc == 0, err
    assert list_cases(raw / "Dataset012_CHAOS_T2SPIR") == ["T2SPIR005_z001", "T2SPIR005_z002"]


def test_msd_prostate_channels_and_merge(tmp_path, msd_prostate, cli):
    raw = tmp_path / "raw"
    rc, err = cli("convert", "msd-prostate", msd_prostate, "--out-raw", raw, "--dataset-id", 21, "--sequence", "ADC")
    assert rc == 0, err
    folder = raw / "Dataset021_MSD_Prostate_ADC"
    src = sitk.GetArrayFromImage(sitk.ReadImage(str(msd_prostate / "imagesTr" / "prostate_04.nii.gz")))
    out = sitk.ReadImage(str(folder / "imagesTr" / "MSDADC004_0000.nii.gz"))
    assert np.allclose(sitk.GetArrayFromImage(out), src[1]) and np.allclose(out.GetSpacing(), (0.6, 0.6, 3.6))
    assert read_dataset_json(folder)["labels"] == {"background": 0, "peripheral zone of prostate": 1,
                                                   "transition zone of prostate": 2}
    verify(folder)
    rc, err = cli("convert", "msd-prostate", msd_prostate, "--out-raw", raw, "--dataset-id", 22, "--merge-prostate",
                  "--as-slices")
    assert rc == 0, err
    merged = raw / "Dataset022_MSD_Prostate_T2"
    assert read_dataset_json(merged)["labels"] == {"background": 0, "prostate": 1}
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(merged / "labelsTr" / "MSDT2000_z001.nii.gz")))
    assert set(np.unique(lab)) == {0, 1}


def test_mrgen_db_and_images_index(tmp_path, mrgen_db, cli):
    raw, idx = tmp_path / "raw", tmp_path / "toy.jsonl"
    rc, err = cli("convert", "mrgen-db", mrgen_db, "--out-raw", raw, "--dataset-id", 31, "--index", idx)
    assert rc == 0, err
    folder = raw / "Dataset031_TOY"
    assert list_cases(folder) == ["TOY001_z000", "TOY001_z001", "TOY002_z000", "TOY002_z001"]
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "labelsTr" / "TOY002_z001.nii.gz")))
    assert lab[3, 4] == 1 and lab[9, 4] == 2 and lab.sum() == 20 * 1 + 20 * 2
    rec = read_index(idx)[0]
    assert (rec.attributes, rec.region, rec.organs) == ("fat dark", "Upper Abdominal Region", ["liver", "spleen"])
    assert read_dataset_json(folder)["mrgen"]["patients"]["TOY002_z000"] == "TOY/image_2"
    verify(folder)

    rc, err = cli("convert", "mrgen-db-images", mrgen_db, "--index", tmp_path / "rp.jsonl")
    assert rc == 0 and any("skipped 1 record" in e for e in err), err
    recs = read_index(tmp_path / "rp.jsonl")
    assert len(recs) == 1 and recs[0].label_file is None and recs[0].modality == "LGE Cardiac MRI"
    assert recs[0].organs == ["heart"]
    rc, err = cli("convert", "mrgen-db-images", mrgen_db, "--index", tmp_path / "rp2.jsonl", "--strict")
    assert rc != 0 and len(err) == 1 and "1.png" in err[0] and not (tmp_path / "rp2.jsonl").exists()


def test_nifti_pattern_and_nnunet_index(tmp_path, cli):
    src = tmp_path / "any"
    nifti_pairs(src / "img", ["a1", "b2"], n_labels=2)
    for p in (src / "img").glob("label_*"):
        p.rename(src / p.name.replace("label_", "seg_"))
    raw = tmp_path / "raw"
    rc, err = cli("convert", "nifti", src, "--out-raw", raw, "--dataset-id", 41, "--name", "Toy",
                  "--labels", "liver=1,spleen=2", "--sequence", "T2-SPIR", "--pattern", "img/image_{id}.nii.gz",
                  "--label-pattern", "seg_{id}.nii.gz", "--as-slices")
    assert rc == 0, err
    folder = raw / "Dataset041_Toy"
    assert list_cases(folder)[0] == "T2SPIRa1_z001"
    assert json.loads((folder / "dataset.json").read_text(encoding="utf-8"))["mrgen"]["modality"] == "T2 SPIR Abdomen MRI"
    verify(folder)
    rc, err = cli("convert", "nnunet", folder, "--index", tmp_path / "i.jsonl")
    assert rc == 0, err
    recs = read_index(tmp_path / "i.jsonl")
    assert len(recs) == 4 and recs[0].patient_id == "T2SPIR/a1" and recs[0].region == "Upper Abdominal Region"
