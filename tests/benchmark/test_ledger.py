"""The benchmark ledger: dataset ids derived from what is asked (distinct, stable), fingerprints gate reuse."""

import json

import pytest

from mrgen_nnunet.benchmark.ledger import Ledger, fingerprint
from mrgen_nnunet.benchmark.rows import ROWS, SEED_PARTS, Row, row_trainer
from mrgen_nnunet.errors import MRGenError


def _keys(n_rows: int, seeds: int) -> list[str]:
    keys = ["source", "target", "test"]
    for k in range(seeds):
        keys += [f"part:{p}:seed{k}" for p in SEED_PARTS] + [f"row:r{i}:seed{k}" for i in range(n_rows)]
    return keys


def test_ids_for_many_rows_and_seeds_are_distinct_and_stable(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "Dataset302_someone_else").mkdir()  # an id already taken in the raw folder is skipped
    ledger = Ledger(tmp_path / "ledger.json", 300, tmp_path / "raw")
    keys = _keys(12, 3)
    ids = [ledger.dataset_id(k) for k in keys]
    assert len(set(ids)) == len(keys) and 302 not in ids and min(ids) == 300
    again = Ledger(tmp_path / "ledger.json", 300, tmp_path / "raw")  # a later run, keys asked in another order
    assert [again.dataset_id(k) for k in reversed(keys)] == list(reversed(ids))
    # a 13th row added later gets a new id and moves nothing
    assert again.dataset_id("row:r12:seed0") not in ids
    assert [again.dataset_id(k) for k in keys] == ids


def test_reuse_only_with_same_settings_else_refuse_or_rebuild(tmp_path):
    removed = []
    ledger = Ledger(tmp_path / "ledger.json", 300, tmp_path)
    settings = {"style": "remap", "copies": 4, "seed": 0}
    assert ledger.reuse("part:remap:seed0", settings, exists=False, remove=lambda: removed.append(1)) is False
    assert ledger.reuse("part:remap:seed0", settings, exists=True, remove=lambda: removed.append(1)) is True
    changed = {**settings, "copies": 8}
    with pytest.raises(MRGenError, match=r"other settings \(changed: copies\).*--force"):
        Ledger(tmp_path / "ledger.json", 300, tmp_path).reuse("part:remap:seed0", changed, True, removed.append)
    assert not removed
    forced = Ledger(tmp_path / "ledger.json", 300, tmp_path, force=True)
    assert forced.reuse("part:remap:seed0", changed, True, lambda: removed.append(1)) is False and removed == [1]
    entry = json.loads((tmp_path / "ledger.json").read_text(encoding="utf-8"))["part:remap:seed0"]
    assert entry["fingerprint"] == fingerprint(changed) and entry["settings"] == changed


def test_unrecorded_output_is_not_reused(tmp_path):
    # an output that exists but was never recorded (e.g. left by an older version) is not trusted
    with pytest.raises(MRGenError, match="unrecorded"):
        Ledger(tmp_path / "ledger.json", 300, tmp_path).reuse("source", {"a": 1}, exists=True, remove=lambda: None)


def test_row_trainer_swaps_the_family_and_keeps_the_schedule():
    assert row_trainer(ROWS["source+aug"], "nnUNetTrainerMRGen_30epochs_60it") == \
        "nnUNetTrainerMRGenAug_30epochs_60it"
    assert row_trainer(ROWS["source"], "nnUNetTrainerMRGen_30epochs_60it") == "nnUNetTrainerMRGen_30epochs_60it"
    assert row_trainer(Row("x", "x", ("source",), trainer="nnUNetTrainerMRGenAug"), "nnUNetTrainer") == \
        "nnUNetTrainer"
    from mrgen_nnunet.trainers import trainer_classes

    known = trainer_classes()
    for row in ROWS.values():  # every row's trainer exists for the shipped schedules
        for schedule in ("nnUNetTrainerMRGen_30epochs_60it", "nnUNetTrainerMRGen_2epochs_10it",
                         "nnUNetTrainerMRGen_8epochs_60it"):
            assert row_trainer(row, schedule) in known
