"""Re-exports for the synthesis tests (one copy of each builder, in the fixtures plugin tests/mrgen_fixtures.py)."""

from __future__ import annotations

import json
from pathlib import Path

from mrgen_fixtures import LABELS, StandInPipeline, make_source_dataset, tree_bytes  # noqa: F401 (re-exported)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))
