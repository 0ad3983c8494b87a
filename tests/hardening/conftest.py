"""Fixtures for the hardening tests: the CLI runner and one real tiny generator per session."""

from __future__ import annotations

import pytest
from hardening_helpers import make_index

from mrgen_nnunet.cli.main import main


@pytest.fixture
def cli(capsys):
    """run(*args) -> (exit code, stderr lines, stdout) through `mrgen_nnunet.cli.main.main`."""

    def run(*args):
        capsys.readouterr()
        rc = main([str(a) for a in args])
        captured = capsys.readouterr()
        return rc, [ln for ln in captured.err.splitlines() if ln.strip()], captured.out

    return run


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory):
    """A real tiny generator (tiny preset, 32 px, 2 steps per stage) on a 2+2-slice index; labels = LABELS."""
    from mrgen_nnunet.generator.train import TrainOptions, train_generator

    root = tmp_path_factory.mktemp("hardening_gen")
    train_generator(make_index(root / "index"), root / "gen", preset="tiny", target_modality="LGE", steps=2,
                    resolution=32, options=TrainOptions(batch_size=2, quiet=True, seed=0))
    return root / "gen"
