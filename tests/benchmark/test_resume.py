"""A benchmark killed (SIGKILL) in the middle of a row's training resumes with only what was missing:
the finished row is not retrained, the killed row continues, and changed settings are refused, not reused."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from mrgen_nnunet.benchmark.protocol import run_benchmark
from mrgen_nnunet.errors import MRGenError

SETUP = ("from dataclasses import replace; from mrgen_nnunet.demo.run import TEST, demo_config; "
         "SIZE = replace(TEST, rows=('source', 'remap'), trainer='nnUNetTrainerMRGen_5epochs_10it')")
exec(SETUP)  # the same config here and in the subprocess


def _config(out: Path):
    return demo_config(out, None, SIZE)  # noqa: F821 (defined by SETUP)


def _kill_tree(proc: subprocess.Popen) -> None:
    parent = psutil.Process(proc.pid)
    for p in parent.children(recursive=True) + [parent]:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    proc.wait()


def test_resume_after_sigkill_trains_only_what_was_missing(tmp_path):
    out = (tmp_path / "bench").resolve()
    _config(out)  # writes the phantom once
    script = (f"{SETUP}; from pathlib import Path; from mrgen_nnunet.benchmark.protocol import run_benchmark; "
              f"run_benchmark(demo_config(Path({str(out)!r}), None, SIZE))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    source_result = out / "rows" / "source" / "seed0" / "result.json"
    remap_models = out / "nnUNet_results" / "seed0"
    deadline = time.time() + 600
    try:
        while time.time() < deadline:  # wait until the remap row has checkpointed at least one epoch
            if source_result.is_file() and list(remap_models.glob("Dataset*remap*/*/fold_0/checkpoint_latest.pth")):
                break
            assert proc.poll() is None, "the benchmark ended before it could be killed"
            time.sleep(0.5)
        else:
            pytest.fail("the remap row never started training")
    finally:
        _kill_tree(proc)
    assert not (out / "rows" / "remap" / "seed0" / "result.json").exists()
    stamp = source_result.stat().st_mtime_ns
    source_model = next(remap_models.glob("Dataset*_source/*/fold_0/checkpoint_final.pth")).stat().st_mtime_ns

    results, _ = run_benchmark(_config(out))
    assert [r.row for r in results] == ["source", "remap"]
    assert source_result.stat().st_mtime_ns == stamp  # the finished row was neither retrained nor re-evaluated
    assert next(remap_models.glob("Dataset*_source/*/fold_0/checkpoint_final.pth")).stat().st_mtime_ns == source_model
    # the killed row continued from its checkpoint: nnU-Net's second training log does not start at epoch 0
    logs = sorted(next(remap_models.glob("Dataset*remap*/*/fold_0")).glob("training_log_*.txt"))
    assert len(logs) == 2
    first, second = (re.findall(r": Epoch (\d+)", p.read_text(encoding="utf-8")) for p in logs)
    assert first[0] == "0" and int(second[0]) >= 1 and second[-1] == "4"
    ledger = json.loads((out / "ledger.json").read_text(encoding="utf-8"))
    assert {"source", "test", "part:remap:seed0", "model:source:seed0", "model:remap:seed0"} <= set(ledger)

    cfg = _config(out)
    cfg.copies = 3  # other settings for the remap part: refused, naming what changed
    with pytest.raises(MRGenError, match=r"part:remap:seed0.*changed: copies.*--force"):
        run_benchmark(cfg)
