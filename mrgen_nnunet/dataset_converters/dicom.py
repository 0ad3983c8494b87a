"""Folders of DICOM series, one series per case (raw clinical target scans) -> unlabelled images + index.

A pattern (patterns.py) finds the case folders, e.g. `{id}` (every sub-folder is a case, the default),
`{split}/{id}/FLAIR` or `sub-{id}/**/flair_dicom`. Each folder must hold exactly one series; it is read with
SimpleITK's ImageSeriesReader (slices in GDCM's geometric order, true spacing/origin/direction) and written as
one NIfTI volume to imagesTs (`write_images_dataset`). Label maps for DICOM cases: convert them to NIfTI and use
`convert nifti`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import keep_locale
from mrgen_nnunet.data.prompts import resolve_modality
from mrgen_nnunet.dataset_converters.common import write_images_dataset
from mrgen_nnunet.dataset_converters.sources import Volume, pattern_sources
from mrgen_nnunet.errors import MRGenError


def read_one_series(folder: Path) -> Volume:
    """The only DICOM series of `folder` as a label-less Volume; none or several series is an error."""
    import SimpleITK as sitk

    from mrgen_nnunet.dataset_converters.chaos import read_dicom_series

    with keep_locale():
        series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    if not series:
        raise MRGenError("no DICOM series in the case folder", folder,
                         "put the .dcm files of one series directly in each case folder, or fix --pattern")
    if len(series) > 1:
        raise MRGenError(f"the case folder holds {len(series)} DICOM series ({', '.join(series[:3])})", folder,
                         "keep one series per case folder (move the others out), or point --pattern at "
                         "per-series folders")
    image, geometry, _ = read_dicom_series(folder)
    if image.ndim != 3 or image.shape[0] < 1:
        raise MRGenError(f"DICOM series is {image.ndim}D {image.shape}, expected one 3D volume", folder,
                         "convert single-frame/multi-frame series to one volume per folder")
    if not np.isfinite(image).all():
        raise MRGenError("DICOM series has NaN/Inf values", folder, "re-export the series")
    return Volume(image.astype(np.float32), None, geometry)


def convert_dicom(src: str | os.PathLike, out_raw: str | os.PathLike, dataset_id: int, name: str | None = None,
                  sequence: str = "", pattern: str = "{id}", as_slices: bool = False,
                  index: str | os.PathLike | None = None, force: bool = False,
                  modality_table: str | os.PathLike | None = None) -> Path:
    """Case folders `src/pattern` (each one DICOM series) -> `out_raw/DatasetNNN_name/imagesTs` + label-less index.

    Case ids are `{sequence without punctuation}{id}`; numeric ids are zero-padded to 3 digits.
    """
    if not sequence:
        raise MRGenError("no modality given", "--sequence", "pass e.g. --sequence FLAIR")
    modality = resolve_modality(sequence, modality_table, option="--sequence")
    prefix = re.sub(r"[^A-Za-z0-9]", "", sequence)
    tag = name or f"DICOM_{prefix}"
    sources = pattern_sources(Path(src), pattern, prefix, lambda folder, _: read_one_series(folder), folders=True)
    return write_images_dataset(sources, out_raw=out_raw, dataset_id=dataset_id, name=tag, modality=modality,
                                channel_name=sequence, as_slices=as_slices, index=index, force=force,
                                dataset_tag=tag)
