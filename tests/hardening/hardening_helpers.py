"""Shared pieces of the hardening tests: a tiny source slice dataset and file-tree hashes (the generator index,
ring phantom and tree_bytes are the fixtures plugin's, re-exported)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from mrgen_fixtures import LABELS, make_index, make_source_dataset, ring, tree_bytes  # noqa: F401 (re-exported)


def make_source(raw: Path, n_patients: int = 2, slices: int = 2, shape=(36, 40), dataset_id: int = 101) -> Path:
    """DatasetNNN_SRC with every slice labelled (the hardening tests count outputs per slice)."""
    return make_source_dataset(raw, n_patients, slices, shape, dataset_id, empty_first=False)


def tree_hash(root: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under `root` (symlinks by target; empty folders ignored); {} when absent."""
    if not root.exists():
        return {}
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "link:" + str(p.readlink())
        elif p.is_file():
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out
