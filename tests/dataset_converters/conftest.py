"""Fixtures for converter tests (defined in convert_helpers, unique module name)."""

from convert_helpers import chaos_dicom, mrgen_db, msd_prostate  # noqa: F401
