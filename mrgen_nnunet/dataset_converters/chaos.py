"""CHAOS 2019 abdominal MR, in either of its two common forms.

* Original release: `.../MR/<patient>/T2SPIR/DICOM_anon/*.dcm` + `T2SPIR/Ground/*.png` and
  `T1DUAL/DICOM_anon/{InPhase,OutPhase}/*.dcm` + `T1DUAL/Ground/*.png`. Ground PNG grey levels: liver 63,
  right kidney 126, left kidney 189, spleen 252 (the challenge's ranges 55–70, 110–135, 175–200, 240–255 are
  accepted). PNG k belongs to the k-th DICOM file in file-name order (the challenge's own pairing).
* Preprocessed NIfTI (SSL-ALPNet/Q-Net): `image_K.nii.gz` + `label_K.nii.gz`, labels 1..4 as above.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import Geometry, keep_locale
from mrgen_nnunet.data.prompts import resolve_modality
from mrgen_nnunet.dataset_converters.common import load_pair, read_png, write_dataset
from mrgen_nnunet.dataset_converters.sources import (
    Volume,
    VolumeSource,
    numbered_files,
    parse_patients,
    sequence_of_folder,
)
from mrgen_nnunet.errors import MRGenError

LABELS = {"background": 0, "liver": 1, "right kidney": 2, "left kidney": 3, "spleen": 4}
GREY_RANGES = ((55, 70, 1), (110, 135, 2), (175, 200, 3), (240, 255, 4))
# --sequence -> (folder with DICOMs, folder with Ground PNGs, case prefix), relative to the patient folder
SEQUENCES = {
    "T2-SPIR": ("T2SPIR/DICOM_anon", "T2SPIR/Ground", "T2SPIR"),
    "T1-InPhase": ("T1DUAL/DICOM_anon/InPhase", "T1DUAL/Ground", "T1IP"),
    "T1-OutofPhase": ("T1DUAL/DICOM_anon/OutPhase", "T1DUAL/Ground", "T1OP"),
}
FOLDER_NAMES = {"T2-SPIR": (), "T1-InPhase": ("T1IP", "InPhase"), "T1-OutofPhase": ("T1OP", "OutPhase")}


def convert_chaos(src: str | os.PathLike, out_raw: str | os.PathLike, dataset_id: int, name: str | None = None,
                  sequence: str | None = None, patients: str | None = None, as_slices: bool = False,
                  all_slices: bool = False, index: str | os.PathLike | None = None, force: bool = False,
                  modality_table: str | os.PathLike | None = None) -> Path:
    """Convert CHAOS MR (`sequence` T2-SPIR, T1-InPhase or T1-OutofPhase; default T2-SPIR, or the sequence a source
    folder is named after, e.g. `.../T1IP`). Case ids `{T2SPIR|T1IP|T1OP}{K:03d}`."""
    src = Path(src)
    sequence = sequence_of_folder(src, sequence, FOLDER_NAMES, "T2-SPIR")
    if sequence not in SEQUENCES:
        raise MRGenError(f"unknown CHAOS sequence {sequence!r}", "--sequence", f"choose one of {', '.join(SEQUENCES)}")
    if not src.is_dir():
        raise MRGenError("source folder not found", src, "pass the CHAOS MR folder or a folder of image_K.nii.gz")
    dicom_dir, ground_dir, prefix = SEQUENCES[sequence]
    wanted = parse_patients(patients)
    sources = []
    nifti = numbered_files(src, "image_")
    if nifti:
        for k, image in nifti.items():
            if wanted is not None and k not in wanted:
                continue
            label = src / f"label_{k}.nii.gz"
            if not label.is_file():
                raise MRGenError("label file missing", label, "every image_K.nii.gz needs its label_K.nii.gz")
            sources.append(VolumeSource(f"{prefix}{k:03d}", f"CHAOS/{k:03d}", str(image),
                                        lambda i=image, lab=label: load_pair(i, lab, LABELS)))
    else:
        root = _patients_root(src)
        for folder in sorted((p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name)):
            k = int(folder.name)
            if wanted is not None and k not in wanted:
                continue
            if not (folder / dicom_dir).is_dir():
                raise MRGenError(f"no {dicom_dir} folder for patient {k}", folder, "check --sequence")
            sources.append(VolumeSource(f"{prefix}{k:03d}", f"CHAOS/{k:03d}", str(folder / dicom_dir),
                                        lambda d=folder / dicom_dir, g=folder / ground_dir: load_dicom_case(d, g)))
    if wanted is not None:
        found = {int(s.patient_id.split("/")[1]) for s in sources}
        if wanted - found:
            raise MRGenError(f"patients {sorted(wanted - found)} not found", src, "check --patients")
    return write_dataset(sources, out_raw=out_raw, dataset_id=dataset_id, name=name or f"CHAOS_{prefix}",
                         labels=LABELS, modality=resolve_modality(sequence, modality_table, option="--sequence"),
                         channel_name=sequence, as_slices=as_slices, all_slices=all_slices, index=index,
                         force=force, dataset_tag=f"CHAOS_MRI_{prefix}",
                         description="CHAOS 2019 MR (Kavur et al. 2021, CC BY-SA 4.0)")


def _patients_root(src: Path) -> Path:
    for cand in (src, src / "MR", src / "Train_Sets" / "MR", src / "CHAOS_Train_Sets" / "Train_Sets" / "MR"):
        if cand.is_dir() and any(p.is_dir() and p.name.isdigit() for p in cand.iterdir()):
            return cand
    raise MRGenError("no CHAOS patient folders (MR/<id>/...) and no image_K.nii.gz files", src,
                     "pass the CHAOS MR folder or a folder of NIfTI pairs")


def read_dicom_series(folder: Path) -> tuple[np.ndarray, Geometry, list[str]]:
    """The (first) DICOM series in `folder` -> ((z, y, x) float32, geometry, files in slice order)."""
    with keep_locale():
        return _read_dicom_series(folder)


def _read_dicom_series(folder: Path) -> tuple[np.ndarray, Geometry, list[str]]:
    import SimpleITK as sitk

    series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise MRGenError("no DICOM series found", folder, "the folder must hold the .dcm files of one series")
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0]))
    for f in sorted(set(map(str, folder.iterdir())) - set(files)):  # GDCM silently drops unreadable files
        if Path(f).is_file() and not Path(f).name.startswith("."):
            try:
                sitk.ReadImage(f)
            except RuntimeError:
                raise MRGenError("cannot read DICOM file (corrupt or truncated)", f, "re-export the series") from None
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError:
        for f in files:  # name the broken file
            try:
                sitk.ReadImage(f)
            except RuntimeError:
                raise MRGenError("cannot read DICOM file (corrupt or truncated)", f, "re-export the series") from None
        raise MRGenError("cannot read DICOM series", folder, "re-export the series") from None
    geometry = Geometry(tuple(image.GetSpacing()), tuple(image.GetOrigin()), tuple(image.GetDirection()))
    return sitk.GetArrayFromImage(image).astype(np.float32), geometry, files


def ground_to_labels(png: np.ndarray, where: object) -> np.ndarray:
    """CHAOS Ground PNG grey levels -> label values 0..4; other non-zero levels are an error."""
    out = np.zeros(png.shape, dtype=np.uint8)
    known = png == 0
    for lo, hi, value in GREY_RANGES:
        hit = (png >= lo) & (png <= hi)
        out[hit] = value
        known |= hit
    if not known.all():
        bad = sorted(set(np.unique(png[~known]).astype(int).tolist()))[:5]
        raise MRGenError(f"Ground PNG has grey levels {bad} outside CHAOS's organ ranges", where,
                         "expected 0, 63 (liver), 126 (right kidney), 189 (left kidney), 252 (spleen)")
    return out


def load_dicom_case(dicom_dir: Path, ground_dir: Path) -> Volume:
    """One CHAOS patient/sequence: DICOM series + Ground PNG stack on the same (z, y, x) grid."""
    image, geometry, files = read_dicom_series(dicom_dir)
    pngs = sorted(ground_dir.glob("*.png")) if ground_dir.is_dir() else []
    if len(pngs) != len(files):
        raise MRGenError(f"{len(pngs)} Ground PNGs for {len(files)} DICOM slices", ground_dir,
                         "each DICOM slice needs one Ground PNG")
    png_of = dict(zip(sorted(files, key=lambda f: Path(f).name), pngs, strict=True))
    label = np.zeros(image.shape, dtype=np.uint8)
    for k, f in enumerate(files):
        png = read_png(png_of[f])
        if png.shape != image.shape[1:]:
            raise MRGenError(f"Ground PNG shape {png.shape} differs from DICOM slice {image.shape[1:]}", png_of[f],
                             "the PNG must match its DICOM slice")
        label[k] = ground_to_labels(png, png_of[f])
    return Volume(image, label, geometry)
