"""The benchmark's schedule with --jobs 2: rows that need no generator train while the generator trains, and the
generator's rows train once it is done (each exactly once). The generator, synthesis, planning and the trainings
are stand-ins here (the real chain runs in tests/demo/test_demo.py); conversion and merging are real."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from mrgen_nnunet.benchmark import plans, protocol
from mrgen_nnunet.benchmark.build import Build
from mrgen_nnunet.benchmark.report import RowResult
from mrgen_nnunet.demo.run import TEST, demo_config

STRUCTURES = ("myocardium", "left ventricle", "right ventricle")


def _stand_ins(monkeypatch, events: list, wait_s: float):
    source_training = threading.Event()

    def train_and_test(cfg, row, seed, dataset, test, plans_name, env, out, labels, ledger, settings, progress,
                       threads=None):
        events.append(f"train {row}")
        if row == "source":
            source_training.set()
        ledger.entries[f"model:{row}:seed{seed}"] = {"settings": {"dataset": settings}}
        return RowResult(row, seed, dict.fromkeys(STRUCTURES, 0.5), dict.fromkeys(STRUCTURES, 1.0), 1)

    def generator(self, index, target_modality):
        events.append("generator starts")
        # with side-by-side jobs the source row trains meanwhile; one job at a time it never could
        events.append("source trained meanwhile" if source_training.wait(wait_s) else "source waited")
        return Path("generator")

    def synthetic(self, seed, source, generator, target_modality, part="synthetic"):
        dataset = self.randomised("labelmap", seed, source)  # a real slice dataset with its own case ids
        self.settings[f"part:{part}:seed{seed}"] = self.settings[f"part:labelmap:seed{seed}"]
        return dataset

    monkeypatch.setattr(protocol, "train_and_test", train_and_test)
    monkeypatch.setattr(Build, "generator", generator)
    monkeypatch.setattr(Build, "synthetic", synthetic)
    monkeypatch.setattr(plans, "shared_plans", lambda *a, **k: "mrgenPlans")
    monkeypatch.setattr(plans, "is_planned", lambda *a, **k: True)


def _config(tmp_path: Path):
    return demo_config(tmp_path / "bench", None, replace(TEST, rows=("source", "synthetic+source", "remap")))


def test_rows_without_the_generator_train_while_it_trains(tmp_path, monkeypatch):
    events: list[str] = []
    _stand_ins(monkeypatch, events, wait_s=60.0)
    results, _ = protocol.run_benchmark(_config(tmp_path), jobs=2)
    assert events[0] == "generator starts"  # the longest stage starts first
    assert events.index("train source") < events.index("source trained meanwhile")
    assert events[-1] == "train synthetic+source"  # only after the generator
    assert sorted(e for e in events if e.startswith("train")) == \
        ["train remap", "train source", "train synthetic+source"]  # every row exactly once
    assert [r.row for r in results] == ["source", "synthetic+source", "remap"]  # the config's order


def test_one_job_runs_one_thing_at_a_time(tmp_path, monkeypatch):
    events: list[str] = []
    _stand_ins(monkeypatch, events, wait_s=1.0)
    results, _ = protocol.run_benchmark(_config(tmp_path), jobs=1)
    assert events[:2] == ["generator starts", "source waited"]
    assert len(results) == 3
