"""Dataset converters: one module per source layout, one registry.

Every converter is a plain function `(src, out_raw, dataset_id, name=None, ..., force=False) -> Path` returning
the written nnU-Net raw dataset folder (the `nnunet` layout writes only an index and returns its path). The generic
layouts (`nifti`, `dicom`) find cases with one pattern language (patterns.py) and convert images without labels
(target scans) to imagesTs + a label-less index.
Modules are imported on use so `import mrgen_nnunet.dataset_converters` stays cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from mrgen_nnunet.errors import MRGenError

CONVERTERS: dict[str, str] = {
    "mscmrseg": "mscmrseg:convert_mscmrseg",
    "chaos": "chaos:convert_chaos",
    "msd-prostate": "msd_prostate:convert_msd_prostate",
    "mrgen-db": "mrgen_db:convert_mrgen_db",
    "mrgen-db-images": "mrgen_db:index_mrgen_db_images",
    "nifti": "nifti:convert_nifti",
    "nnunet": "nnunet:convert_nnunet",
    "dicom": "dicom:convert_dicom",
}


def get_converter(layout: str) -> Callable[..., Path]:
    """The converter function for `layout` (a key of CONVERTERS)."""
    if layout not in CONVERTERS:
        raise MRGenError(f"unknown layout {layout!r}", "LAYOUT", f"choose one of {', '.join(CONVERTERS)}")
    module, func = CONVERTERS[layout].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), func)

