"""Suite-wide setup: no caller nnUNet_* variables, the ../shared/data location (skip when absent), a quiet,
2-core-friendly torch; the shared fixtures come from the mrgen_fixtures plugin."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# the suite's shared fixtures (tiny generator, generator index, tiny nnU-Net dataset, CLI runner): tests/mrgen_fixtures.py
pytest_plugins = ["mrgen_fixtures"]


def pytest_configure(config):
    """Tests build their own nnU-Net environment: drop the caller's nnUNet_* variables (nnU-Net's docs tell every
    user to export them) before any test module is imported, so neither in-process commands, nor nnunetv2.paths,
    nor subprocesses started with os.environ look in the user's folders. Tests that need them use `nnunet_env`."""
    for key in [k for k in os.environ if k.startswith("nnUNet_")]:
        del os.environ[key]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need real MRI skip when it is absent (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (only the project's CI/dev machines have it)")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def _library_log_handlers():
    """diffusers and transformers attach a StreamHandler to whatever sys.stderr is when they first log; inside a
    capsys test that stream is closed afterwards ("--- Logging error ---" in later tests). Attach them now."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.get_logger("diffusers")
    transformers_logging.get_logger("transformers")


@pytest.fixture(autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    yield


@pytest.fixture
def nnunet_env(tmp_path, monkeypatch) -> dict[str, Path]:
    """Fresh nnUNet_raw / nnUNet_preprocessed / nnUNet_results folders under tmp_path, set in the environment."""
    paths = {name: tmp_path / name for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for name, p in paths.items():
        p.mkdir()
        monkeypatch.setenv(name, str(p))
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")
    return paths
