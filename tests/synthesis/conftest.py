"""Fixtures for the synthesis tests (helpers live in synthesis_helpers.py; the tiny generator in the shared
fixtures plugin, tests/mrgen_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthesis_helpers import make_source_dataset


@pytest.fixture
def source_raw(tmp_path) -> Path:
    raw = tmp_path / "raw"
    make_source_dataset(raw)
    return raw


@pytest.fixture(scope="session")
def generator(tiny_generator) -> Path:
    """The session's real tiny generator (mrgen_fixtures.tiny_generator) under the name these tests use."""
    return tiny_generator
