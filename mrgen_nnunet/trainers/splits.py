"""Patient-grouped cross-validation splits whose validation folds hold only real cases (pure Python).

Synthetic cases keep their source patient id (CONTRACTS §2), so grouping by patient keeps a synthetic image of a
validation patient's label map out of training: it is dropped from that fold altogether (it would leak the label).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrgen_nnunet.errors import MRGenError


def patient_splits(cases: list[str], patients: dict[str, str], synthetic: set[str] | list[str],
                   n_folds: int = 5, seed: int = 12345) -> list[dict[str, list[str]]]:
    """Split `cases` into `n_folds` folds by patient; validation = real cases of the fold's patients only.

    cases: case identifiers (nnU-Net's, without `_0000`). patients: case -> patient id (every case).
    synthetic: the synthetic case ids. Returns nnU-Net's `splits_final.json` content:
    `[{"train": [...], "val": [...]}, ...]`, lists sorted. Training folds hold real and synthetic cases of the other
    patients plus synthetic cases of patients that have no real case. Without any real case (a synthetic-only
    dataset) the folds are grouped over all patients and validate on synthetic cases — the only data there is.
    """
    synthetic = set(synthetic)
    missing = sorted(c for c in cases if c not in patients)
    if missing:
        raise MRGenError(f"{len(missing)} case(s) have no patient id, e.g. {missing[0]!r}", "dataset.json mrgen.patients",
                         "rewrite the dataset with mrgen-nnunet convert/synthesize so every case has a patient id")
    real = [c for c in cases if c not in synthetic]
    pool = real if real else list(cases)
    groups = sorted({patients[c] for c in pool})
    if len(groups) < 2:
        raise MRGenError(f"only {len(groups)} patient(s) to split into train and validation", "dataset.json",
                         "add cases of a second patient or train with fold 'all'")
    order = np.random.RandomState(seed).permutation(len(groups))
    folds = [sorted(groups[i] for i in order[k::min(n_folds, len(groups))]) for k in range(min(n_folds, len(groups)))]
    pool_patients = set(groups)
    splits = []
    for val_patients in folds:
        val_set = set(val_patients)
        val = sorted(c for c in pool if patients[c] in val_set)
        train = sorted(c for c in cases if patients[c] not in val_set
                       and (patients[c] in pool_patients or c in synthetic))
        splits.append({"train": train, "val": val})
    return splits


def validation_has_synthetic(splits: list[dict[str, list[str]]], synthetic: set[str] | list[str]) -> list[str]:
    """Synthetic case ids found in any validation fold (empty when validation is real-only)."""
    synthetic = set(synthetic)
    return sorted({c for s in splits for c in s["val"] if c in synthetic})


def cases_without_labels(cases: list[str], gt_folder: str | Path, file_ending: str) -> list[str]:
    """Cases with no ground-truth file `gt_folder/{case}{file_ending}` (nnU-Net's `gt_segmentations`, copied from
    labelsTr at preprocessing and read by the final validation), sorted."""
    return sorted(c for c in cases if not (Path(gt_folder) / f"{c}{file_ending}").is_file())
