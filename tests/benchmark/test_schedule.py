"""The benchmark's schedule with --jobs 2: rows that need no generator train while the generator trains, and the
generator's rows train once it is done (each exactly once). The generator, synthesis, planning and the trainings
are stand-ins here (the real chain runs in tests/demo/test_demo.py); conversion and merging are real."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import pytest

from mrgen_nnunet.benchmark import plans, protocol
from mrgen_nnunet.benchmark.build import Build
from mrgen_nnunet.benchmark.ledger import Ledger
from mrgen_nnunet.benchmark.report import RowResult
from mrgen_nnunet.data.nnunet_raw import find_dataset
from mrgen_nnunet.demo.run import TEST, demo_config
from mrgen_nnunet.errors import MRGenError

STRUCTURES = ("myocardium", "left ventricle", "right ventricle")


def _stand_ins(monkeypatch, events: list, wait_s: float):
    source_training = threading.Event()

    def train_and_test(cfg, row, seed, dataset, test, plans_name, env, out, labels, ledger, settings, progress,
                       threads=None, pretrained=None):
        events.append(f"train {row}" + (f" from {pretrained}" if pretrained else ""))
        if row == "source":
            source_training.set()
        ledger.entries[f"model:{row}:seed{seed}"] = {"settings": {"dataset": settings}}
        return RowResult(row, seed, dict.fromkeys(STRUCTURES, 0.5), dict.fromkeys(STRUCTURES, 1.0), 1)

    generator_started = threading.Event()

    def generator(self, index, target_modality):
        events.append("generator starts")
        generator_started.set()
        # with side-by-side jobs the source row trains meanwhile; one job at a time it never could
        events.append("source trained meanwhile" if source_training.wait(wait_s) else "source waited")
        return Path("generator")

    def synthetic(self, seed, source, generator, target_modality, part="synthetic"):
        events.append("synthesise")
        dataset = self.randomised("labelmap", seed, source)  # a real slice dataset with its own case ids
        self.settings[f"part:{part}:seed{seed}"] = self.settings[f"part:labelmap:seed{seed}"]
        return dataset

    monkeypatch.setattr(protocol, "train_and_test", train_and_test)
    monkeypatch.setattr(Build, "generator", generator)
    monkeypatch.setattr(Build, "synthetic", synthetic)
    def shared_plans(*args, **kwargs):  # the real planning takes half a minute: the generator has started by then
        generator_started.wait(5.0)
        return "mrgenPlans"

    monkeypatch.setattr(plans, "shared_plans", shared_plans)
    monkeypatch.setattr(plans, "is_planned", lambda *a, **k: True)


def _stand_in_pseudo(monkeypatch, parts: dict[str, str], calls: list | None = None):
    """Build.pseudo replaced: the "pseudo-labelled" part of base `b` is a randomised copy of the source
    (`parts[b]`, "labelmap" or "remap": distinct parts get distinct datasets); each call's (base, model folder(s))
    is appended to `calls`."""
    def pseudo(self, seed, base, base_model, target, test):
        if calls is not None:
            calls.append((base, base_model))
        source = find_dataset(self.raw, self.ledger.dataset_id("source"))
        dataset = self.randomised(parts[base], seed, source)
        self.settings[f"part:pseudo:{base}:seed{seed}"] = self.settings[f"part:{parts[base]}:seed{seed}"]
        return dataset

    monkeypatch.setattr(Build, "pseudo", pseudo)


def _config(tmp_path: Path):
    return demo_config(tmp_path / "bench", None, replace(TEST, rows=("source", "synthetic+source", "remap")))


def test_rows_without_the_generator_train_while_it_trains(tmp_path, monkeypatch):
    events: list[str] = []
    _stand_ins(monkeypatch, events, wait_s=60.0)
    results, _ = protocol.run_benchmark(_config(tmp_path), jobs=2)
    assert events[0] == "generator starts"  # the longest stage starts first
    assert events.index("train source") < events.index("source trained meanwhile")
    # the generator's row trains only after the generator and the synthesis (remap may train before or after)
    assert events.index("source trained meanwhile") < events.index("synthesise") < \
        events.index("train synthetic+source")
    assert sorted(e for e in events if e.startswith("train")) == \
        ["train remap", "train source", "train synthetic+source"]  # every row exactly once
    assert [r.row for r in results] == ["source", "synthetic+source", "remap"]  # the config's order


def test_one_job_runs_one_thing_at_a_time(tmp_path, monkeypatch):
    events: list[str] = []
    _stand_ins(monkeypatch, events, wait_s=1.0)
    results, _ = protocol.run_benchmark(_config(tmp_path), jobs=1)
    assert events[:2] == ["generator starts", "source waited"]
    assert len(results) == 3


def test_selftrain_rounds_train_in_order_on_their_own_datasets(tmp_path, monkeypatch):
    """`selftrain2` takes its labels from `selftrain`'s model, which takes them from `source+aug`'s: three rounds,
    and the two self-training rows merge different pseudo-labelled parts (their own dataset ids)."""
    events: list[str] = []
    _stand_ins(monkeypatch, events, wait_s=0.0)
    calls: list = []
    _stand_in_pseudo(monkeypatch, {"source+aug": "labelmap", "selftrain": "remap"}, calls)
    cfg = demo_config(tmp_path / "bench", None, replace(TEST, rows=("selftrain2",)))
    results, _ = protocol.run_benchmark(cfg, jobs=2)
    assert events == ["train source+aug", "train selftrain", "train selftrain2"]
    assert [base for base, _ in calls] == ["source+aug", "selftrain"]
    assert [r.row for r in results] == ["source+aug", "selftrain", "selftrain2"]
    ledger = Ledger(cfg.out / "ledger.json", cfg.first_dataset_id, cfg.out / "nnUNet_raw").entries
    first, second = ledger["row:source+pseudo:seed0"], ledger["row:source+pseudo@selftrain:seed0"]
    assert first["id"] != second["id"] and first["fingerprint"] != second["fingerprint"]


def test_a_finetuned_selftrain_row_starts_from_its_base_models_weights(tmp_path, monkeypatch):
    """`selftrain-ft` trains from the base row's final checkpoint (nnUNetv2_train -pretrained_weights) on its own
    copy of the merged dataset, so its model folder is never the from-scratch `selftrain` row's."""
    events: list[str] = []
    _stand_ins(monkeypatch, events, wait_s=0.0)

    _stand_in_pseudo(monkeypatch, {"source+aug": "labelmap"})
    cfg = demo_config(tmp_path / "bench", None, replace(TEST, rows=("selftrain", "selftrain-ft")))
    protocol.run_benchmark(cfg, jobs=1)
    ledger = Ledger(cfg.out / "ledger.json", cfg.first_dataset_id, cfg.out / "nnUNet_raw").entries
    base = find_dataset(cfg.out / "nnUNet_raw", ledger["source"]["id"]).name
    checkpoint = (cfg.out / "nnUNet_results" / "seed0" / base / "nnUNetTrainerMRGenAug_1epochs_10it__mrgenPlans__2d"
                  / "fold_0" / "checkpoint_final.pth")
    assert events == ["train source+aug", "train selftrain", f"train selftrain-ft from {checkpoint}"]
    scratch, finetuned = ledger["row:source+pseudo:seed0"], ledger["row:source+pseudo#finetune:seed0"]
    assert scratch["id"] != finetuned["id"] and scratch["fingerprint"] == finetuned["fingerprint"]


def test_a_second_finetuned_round_starts_from_the_first_rounds_finetuned_weights(tmp_path, monkeypatch):
    """`selftrain2-ft-ipa` takes its labels and its starting weights from `selftrain-ft-ipa`, whose model lives in
    the folder of its own (#finetune) dataset, not in the base row's or the from-scratch row's."""
    events: list[str] = []
    _stand_ins(monkeypatch, events, wait_s=0.0)
    calls: list = []
    _stand_in_pseudo(monkeypatch, {"source+aug-ipa": "labelmap", "selftrain-ft-ipa": "remap"}, calls)
    cfg = demo_config(tmp_path / "bench", None, replace(TEST, rows=("selftrain2-ft-ipa",)))
    protocol.run_benchmark(cfg, jobs=1)
    ledger = Ledger(cfg.out / "ledger.json", cfg.first_dataset_id, cfg.out / "nnUNet_raw").entries
    raw = cfg.out / "nnUNet_raw"
    source = find_dataset(raw, ledger["source"]["id"]).name
    first = find_dataset(raw, ledger["row:source+pseudo#finetune:seed0"]["id"]).name
    second = ledger["row:source+pseudo@selftrain-ft-ipa#finetune:seed0"]["id"]
    trainer_folder = "nnUNetTrainerMRGenAugIPA_1epochs_10it__mrgenPlans__2d"
    checkpoint = cfg.out / "nnUNet_results" / "seed0" / "{}" / trainer_folder / "fold_0" / "checkpoint_final.pth"
    assert events == ["train source+aug-ipa", f"train selftrain-ft-ipa from {str(checkpoint).format(source)}",
                      f"train selftrain2-ft-ipa from {str(checkpoint).format(first)}"]
    assert [(base, model.parent.name) for base, model in calls] == [("source+aug-ipa", source),
                                                                    ("selftrain-ft-ipa", first)]
    assert second not in (ledger["source"]["id"], ledger["row:source+pseudo#finetune:seed0"]["id"])


def test_an_ensemble_labelled_row_trains_all_its_labellers_first_and_labels_with_their_models(tmp_path, monkeypatch):
    """`selftrain-ft-ens` labels with the models of `source+aug-ipa` and `source+aug` (same seed), both trained in
    the first round, and fine-tunes from its base's weights only; its datasets are its own."""
    from mrgen_nnunet.benchmark.rows import rounds

    assert rounds(["selftrain-ft-ens"]) == [["source+aug-ipa", "source+aug"], ["selftrain-ft-ens"]]
    events: list[str] = []
    _stand_ins(monkeypatch, events, wait_s=0.0)
    calls: list = []
    _stand_in_pseudo(monkeypatch, {"source+aug-ipa,source+aug": "labelmap"}, calls)
    cfg = demo_config(tmp_path / "bench", None, replace(TEST, rows=("selftrain-ft-ens",)))
    protocol.run_benchmark(cfg, jobs=1)
    ledger = Ledger(cfg.out / "ledger.json", cfg.first_dataset_id, cfg.out / "nnUNet_raw").entries
    source = find_dataset(cfg.out / "nnUNet_raw", ledger["source"]["id"]).name
    ipa, aug = (f"{source}/{t}_1epochs_10it__mrgenPlans__2d" for t in ("nnUNetTrainerMRGenAugIPA",
                                                                         "nnUNetTrainerMRGenAug"))
    assert [(base, [f"{m.parent.name}/{m.name}" for m in models]) for base, models in calls] == [
        ("source+aug-ipa,source+aug", [ipa, aug])]
    checkpoint = cfg.out / "nnUNet_results" / "seed0" / ipa / "fold_0" / "checkpoint_final.pth"
    assert events == ["train source+aug-ipa", "train source+aug", f"train selftrain-ft-ens from {checkpoint}"]
    merged = find_dataset(cfg.out / "nnUNet_raw", ledger["row:source+pseudo@source+aug-ipa,source+aug#finetune:seed0"]
                          ["id"])
    assert merged.name.endswith("_source_pseudo_from_source_aug-ipa_and_source_aug_finetune_s0")


def test_a_finetuned_row_whose_base_has_no_final_checkpoint_is_a_one_line_error(tmp_path):
    from mrgen_nnunet.benchmark.training import Progress, train_and_test

    cfg = demo_config(tmp_path / "bench", None, TEST)
    ledger = Ledger(tmp_path / "ledger.json", cfg.first_dataset_id, tmp_path / "raw")
    missing = tmp_path / "results" / "base" / "fold_0" / "checkpoint_final.pth"
    with pytest.raises(MRGenError, match="has not finished training"):
        train_and_test(cfg, "selftrain-ft", 0, tmp_path / "Dataset901_x", tmp_path / "test", "mrgenPlans",
                       {"nnUNet_results": str(tmp_path / "results")}, tmp_path / "out", {}, ledger, {}, Progress(),
                       pretrained=missing)


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_nnunet_filter_model_trains_once_before_synthesis(tmp_path, monkeypatch, jobs):
    events: list[str] = []
    _stand_ins(monkeypatch, events, wait_s=0.0)
    cfg = _config(tmp_path)
    cfg.filter = "nnunet"
    results, _ = protocol.run_benchmark(cfg, jobs=jobs)
    assert events.count("train source") == 1
    assert events.index("train source") < events.index("synthesise") < events.index("train synthetic+source")
    assert sorted(r.row for r in results) == ["remap", "source", "synthetic+source"]


def test_a_failed_training_starts_nothing_after_it(tmp_path, monkeypatch):
    events: list[str] = []
    _stand_ins(monkeypatch, events, wait_s=0.0)
    stand_in = protocol.train_and_test

    def failing(cfg, row, *args, **kwargs):
        if row == "source":
            events.append("train source")
            raise MRGenError("nnUNetv2_train failed", "log", "see the log")
        return stand_in(cfg, row, *args, **kwargs)

    monkeypatch.setattr(protocol, "train_and_test", failing)
    cfg = demo_config(tmp_path / "bench", None, replace(TEST, rows=("source", "remap", "oracle")))
    with pytest.raises(MRGenError, match="nnUNetv2_train failed"):
        protocol.run_benchmark(cfg, jobs=1)
    assert events == ["train source"]  # the queued rows gave up instead of training one after another


def test_a_row_labelled_by_self_trained_rows_trains_after_every_round_they_need():
    """`selftrain2-ft-ens` labels with `selftrain-ft-ens` (round 1) and `selftrain2-ft-ipa` (round 2): it trains in
    round 3, each labeller once, in its own round; its dataset key names both labellers."""
    from mrgen_nnunet.benchmark.rows import ROWS, rounds, row_key_parts

    assert rounds(["selftrain2-ft-ens"]) == [["source+aug-ipa", "source+aug"], ["selftrain-ft-ens", "selftrain-ft-ipa"],
                                             ["selftrain2-ft-ipa"], ["selftrain2-ft-ens"]]
    assert rounds(["selftrain-ft-ipa", "selftrain2-ft-ens"])[1] == ["selftrain-ft-ens", "selftrain-ft-ipa"]
    assert row_key_parts(ROWS["selftrain2-ft-ens"]) == "source+pseudo@selftrain-ft-ens,selftrain2-ft-ipa#finetune"
