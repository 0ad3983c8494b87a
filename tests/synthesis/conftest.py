"""Fixtures for the synthesis tests (helpers live in synthesis_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from synthesis_helpers import make_index, make_source_dataset


@pytest.fixture
def source_raw(tmp_path) -> Path:
    raw = tmp_path / "raw"
    make_source_dataset(raw)
    return raw


@pytest.fixture(scope="session")
def generator(tmp_path_factory) -> Path:
    """The real tiny generator (2 steps per stage at 32 px), trained once for every synthesis test."""
    from mrgen_nnunet.generator.train import TrainOptions, train_generator

    root = tmp_path_factory.mktemp("gen")
    train_generator(make_index(root), root / "gen", preset="tiny", target_modality="LGE", steps=2, resolution=32,
                    options=TrainOptions(batch_size=2, quiet=True, seed=0))
    return root / "gen"
