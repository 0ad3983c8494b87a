"""An nnU-Net training run through `run_nnunet` shows its epochs when the output is a log file (or when several run
side by side, `progress=False`): plain lines with epoch N/total, rate and ETA, not a rich bar that prints nothing
until it ends. The tool is a stand-in script that prints nnU-Net's epoch lines."""

from __future__ import annotations

import io
import os
import sys

import pytest

from mrgen_nnunet import progress
from mrgen_nnunet.trainers.nnunet_run import run_nnunet

FAKE_TRAINING = "#!/bin/sh\nfor e in 0 1 2 3; do echo \"2026-12-02 08:00:0$e.000000: Epoch $e\"; done\n"


@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell script stands in for nnUNetv2_train")
@pytest.mark.parametrize("side_by_side", [False, True])
def test_epochs_are_plain_lines_in_a_log(tmp_path, monkeypatch, side_by_side):
    (tmp_path / "bin").mkdir()
    tool = tmp_path / "bin" / "fake_train"
    tool.write_text(FAKE_TRAINING)
    tool.chmod(0o755)
    monkeypatch.setattr(progress, "EVERY_S", 0.0)  # a line per epoch instead of every 30 s
    out = io.StringIO()  # not a terminal, like `make demo > log`
    monkeypatch.setattr(sys, "stdout", out)
    env = dict(os.environ, PATH=str(tmp_path / "bin") + os.pathsep + os.environ["PATH"])
    run_nnunet(["fake_train"], env, tmp_path / "train.log", total_epochs=4, description="train Dataset905_x",
               progress=not side_by_side)
    lines = out.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines] == [f"train Dataset905_x: epoch {e}/4" for e in range(5)]
    assert all("epochs/s" in line and "ETA" in line for line in lines)
    assert "Epoch 3" in (tmp_path / "train.log").read_text(encoding="utf-8")  # the full output is logged


def test_a_resumed_training_counts_from_its_checkpoint(tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    tool = tmp_path / "bin" / "fake_resume"
    tool.write_text("#!/bin/sh\nfor e in 6 7; do echo \"2026-12-02 08:00:0$e.000000: Epoch $e\"; done\n")
    tool.chmod(0o755)
    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    env = dict(os.environ, PATH=str(tmp_path / "bin") + os.pathsep + os.environ["PATH"])
    run_nnunet(["fake_resume"], env, tmp_path / "train.log", total_epochs=8, description="train", progress=False)
    lines = out.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines] == ["train: epoch 6/8", "train: epoch 7/8", "train: epoch 8/8"]
    assert lines[-1].endswith("ETA 0:00")


def test_tools_without_epochs_print_nothing(tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    tool = tmp_path / "bin" / "fake_plan"
    tool.write_text("#!/bin/sh\necho planning\n")
    tool.chmod(0o755)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    env = dict(os.environ, PATH=str(tmp_path / "bin") + os.pathsep + os.environ["PATH"])
    run_nnunet(["fake_plan"], env, tmp_path / "plan.log", description="plan")
    assert out.getvalue() == ""
