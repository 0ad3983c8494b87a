"""Progress when stdout is not a terminal (a log file, CI): plain lines with step, loss, rate and ETA."""

from __future__ import annotations

import io
import re

from mrgen_nnunet import progress
from mrgen_nnunet.progress import StepProgress

LINE = re.compile(r"^train autoencoder: step (\d+)/4  loss \d+\.\d{4}  \d+\.\d\d steps/s  ETA \d+:\d\d$")


def test_training_stage_prints_plain_lines_when_stdout_is_not_a_tty(synthetic_index, tmp_path, capsys, monkeypatch):
    from mrgen_nnunet.generator.train import TrainOptions, train_autoencoder

    monkeypatch.setattr(progress, "EVERY_S", 0.0)  # a line for every step instead of every 30 s
    train_autoencoder(synthetic_index, tmp_path / "gen", "tiny", 32, TrainOptions(steps=4, batch_size=2))
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if "train autoencoder" in ln]  # a rich bar's frame would fail LINE
    assert [int(m.group(1)) if (m := LINE.match(ln)) else ln for ln in lines] == [1, 2, 3, 4], lines


def test_lines_are_spaced_by_time_and_the_last_step_always_prints(monkeypatch):
    clock = iter([0.0, 10.0, 31.0, 40.0, 45.0])  # enter, then steps 1..4 at these times
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    with StepProgress("train text", total=4, every_s=30.0, stream=out) as p:
        for step in range(1, 5):
            p.update(step, 0.5)
    assert out.getvalue().splitlines() == ["train text: step 2/4  loss 0.5000  0.06 steps/s  ETA 0:31",
                                           "train text: step 4/4  loss 0.5000  0.09 steps/s  ETA 0:00"]


def test_quiet_prints_nothing_and_resumed_runs_rate_from_the_resume_step(monkeypatch):
    out = io.StringIO()
    with StepProgress("train mask", total=3, quiet=True, stream=out) as p:
        p.update(3, 0.1)
    assert out.getvalue() == ""
    clock = iter([0.0, 4.0])
    monkeypatch.setattr(progress.time, "perf_counter", lambda: next(clock))
    with StepProgress("train mask", total=10, start=8, every_s=0.0, stream=out) as p:
        p.update(10, 0.1)  # 2 steps in 4 s since the resume, not 10
    assert out.getvalue() == "train mask: step 10/10  loss 0.1000  0.50 steps/s  ETA 0:00\n"
