"""docs/CONTRACTS.md is checked against the code: every name in its ```contract blocks exists, and the parameters
it lists open that object's signature, in order."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

CONTRACTS = Path(__file__).resolve().parents[1] / "docs" / "CONTRACTS.md"


def _entries(path: Path = CONTRACTS) -> list[tuple[str, str, list[str] | None]]:
    """(module, dotted name, listed parameters or None) for each item of each ```contract block."""
    entries = []
    for block in re.findall(r"```contract\n(.*?)```", path.read_text(encoding="utf-8"), re.S):
        for line in block.strip().splitlines():
            module, _, items = line.partition(": ")
            for name, params in re.findall(r"([\w.]+)(\([^)]*\))?", items):
                listed = [p.strip() for p in params[1:-1].split(",") if p.strip()] if params else None
                entries.append((module.strip(), name, listed))
    return entries


def test_contract_blocks_are_found():
    entries = _entries()
    assert len(entries) >= 40
    assert ("mrgen_nnunet.synthesis.run", "synthesize", ["options", "pipeline", "filter_backend"]) in entries


@pytest.mark.parametrize("module,name,listed", _entries(), ids=lambda v: v if isinstance(v, str) else "")
def test_contract_matches_the_code(module, name, listed):
    obj = importlib.import_module(module)
    for part in name.split("."):
        assert hasattr(obj, part), f"{module}.{name} is in CONTRACTS.md but not in the code"
        obj = getattr(obj, part)
    if listed is None:
        return
    params = [p for p in inspect.signature(obj).parameters if p != "self"]
    assert params[:len(listed)] == listed, f"{module}.{name}{tuple(params)} does not start with {tuple(listed)}"
