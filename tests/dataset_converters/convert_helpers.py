"""Synthetic miniatures of every source layout, built in tmp_path, and the nnU-Net check (imported by the tests and
conftest; the CLI runner `cli` is the fixtures plugin's)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from mrgen_nnunet.data.io import keep_locale


def write(array, path: Path, spacing=(1.25, 1.25, 5.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(spacing[: img.GetDimension()] if len(spacing) >= img.GetDimension() else spacing + (1.0,))
    sitk.WriteImage(img, str(path))
    return path


def blob_label(shape, n_labels, rng) -> np.ndarray:
    """(z, y, x) uint8 with each label 1..n as a small box on the middle slices; slice 0 stays empty."""
    lab = np.zeros(shape, np.uint8)
    for v in range(1, n_labels + 1):
        y, x = rng.integers(0, shape[1] - 4), rng.integers(0, shape[2] - 4)
        lab[1:, y: y + 4, x: x + 4] = v
    return lab


def nifti_pairs(folder: Path, ids, n_labels=3, shape=(3, 16, 16), seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for k in ids:
        write((rng.random(shape) * 1000).astype(np.float64), folder / f"image_{k}.nii.gz")
        write(blob_label(shape, n_labels, rng), folder / f"label_{k}.nii.gz")
    return folder


def dicom_series(folder: Path, volume: np.ndarray, spacing=(1.5, 1.5), thickness=5.0) -> list[Path]:
    """Write (z, y, x) int16 as a minimal MR DICOM series (one file per slice) with SimpleITK."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    series, study = "1.2.826.0.1.3680043.2.1125.1", "1.2.826.0.1.3680043.2.1125.2"
    files = []
    for k in range(volume.shape[0]):
        sl = sitk.GetImageFromArray(volume[k].astype(np.int16))
        sl.SetSpacing(spacing)
        for tag, val in [("0008|0060", "MR"), ("0020|000e", series), ("0020|000d", study),
                         ("0020|0032", f"0\\0\\{k * thickness}"), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                         ("0020|0013", str(k + 1)), ("0018|0050", str(thickness)),
                         ("0008|0016", "1.2.840.10008.5.1.4.1.1.4"), ("0008|0018", f"{series}.{k + 1}")]:
            sl.SetMetaData(tag, val)
        files.append(folder / f"IMG-0001-{k + 1:05d}.dcm")
        writer.SetFileName(str(files[-1]))
        with keep_locale():  # GDCM's writer sets the process locale to "C" (ASCII text IO afterwards)
            writer.Execute(sl)
    return files


@pytest.fixture
def chaos_dicom(tmp_path) -> Path:
    """CHAOS original layout, 2 patients x 3 slices of 24x20, T2SPIR DICOM + Ground PNGs (grey 63/126/189/252)."""
    rng = np.random.default_rng(1)
    root = tmp_path / "CHAOS_Train_Sets" / "Train_Sets" / "MR"
    for pid in (1, 2):
        vol = (rng.random((3, 24, 20)) * 800).astype(np.int16)
        dicom_series(root / str(pid) / "T2SPIR" / "DICOM_anon", vol)
        (root / str(pid) / "T2SPIR" / "Ground").mkdir()
        for k in range(3):
            png = np.zeros((24, 20), np.uint8)
            if k > 0:
                png[2:6, 2:6], png[8:12, 2:6], png[14:18, 2:6], png[2:6, 10:14] = 63, 126, 189, 252
            sitk.WriteImage(sitk.GetImageFromArray(png), str(root / str(pid) / "T2SPIR" / "Ground" / f"IMG-0001-{k + 1:05d}.png"))
    return tmp_path / "CHAOS_Train_Sets"


@pytest.fixture
def msd_prostate(tmp_path) -> Path:
    """Task05_Prostate miniature: 2 cases, 4D (2 channels T2/ADC) 3x16x16, labels PZ=1, TZ=2."""
    rng = np.random.default_rng(2)
    root = tmp_path / "Task05_Prostate"
    (root / "imagesTr").mkdir(parents=True)
    (root / "dataset.json").write_text(json.dumps({"modality": {"0": "T2", "1": "ADC"},
                                                   "labels": {"0": "background", "1": "PZ", "2": "TZ"}}))
    for k in (0, 4):
        arr = (rng.random((16, 16, 3, 2)) * 500).astype(np.float32)  # MSD's NIfTI order (x, y, z, channel)
        nib.save(nib.Nifti1Image(arr, np.diag([-0.6, -0.6, 3.6, 1.0])), root / "imagesTr" / f"prostate_{k:02d}.nii.gz")
        write(blob_label((3, 16, 16), 2, rng), root / "labelsTr" / f"prostate_{k:02d}.nii.gz", spacing=(0.6, 0.6, 3.6))
    return root


@pytest.fixture
def mrgen_db(tmp_path) -> Path:
    """MRGen-DB miniature: one conditional dataset (2 volumes x 2 slices, organs a/b) + one radiopaedia record."""
    rng = np.random.default_rng(3)
    root = tmp_path / "MRGenDB"
    records = []
    for vol in (1, 2):
        for k in range(2):
            d = root / "conditional_dataset" / "TOY" / str(vol)
            d.mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(sitk.GetImageFromArray((rng.random((16, 16)) * 255).astype(np.uint8)), str(d / f"{k:03d}.png"))
            rec = {"image_path": f"./conditional_dataset/TOY/{vol}/{k:03d}.png", "modality": "T2 SPIR Abdomen MRI",
                   "modality_attributes": "fat dark", "region": "Upper Abdominal Region", "label": ["liver", "spleen"],
                   "organs": [], "volume_nii_path": f"TOY/image_{vol}.nii.gz", "dataset": "TOY"}
            for i in range(2):
                m = np.zeros((16, 16), np.uint8)
                m[2 + 6 * i: 6 + 6 * i, 3:8] = 255
                sitk.WriteImage(sitk.GetImageFromArray(m), str(d / f"{k:03d}_mask{i}.png"))
                rec[f"mask{i}_path"] = f"./conditional_dataset/TOY/{vol}/{k:03d}_mask{i}.png"
            records.append(rec)
    (root / "conditional_dataset" / "TOY_all.json").write_text(json.dumps(records))
    (root / "radiopaedia" / "9" / "1").mkdir(parents=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8), np.uint8)), str(root / "radiopaedia" / "9" / "1" / "0.png"))
    (root / "radiopaedia_data").mkdir()
    (root / "radiopaedia_data" / "r.json").write_text(json.dumps([
        {"image_path": "./radiopaedia/9/1/0.png", "aux_modality": "LGE", "image_modality": "MRI",
         "region": "Lower Thoracic Region", "organs": "heart"},
        {"image_path": "./radiopaedia/9/1/1.png", "aux_modality": "LGE", "region": "x", "organs": "heart"}]))
    return root


def verify(folder: Path) -> None:
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(folder), num_processes=1)
