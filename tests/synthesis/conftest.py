"""Fixtures for the synthesis tests (helpers live in synthesis_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthesis_helpers import make_source_dataset


@pytest.fixture
def source_raw(tmp_path) -> Path:
    raw = tmp_path / "raw"
    make_source_dataset(raw)
    return raw
