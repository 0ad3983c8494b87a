"""Processes the tool starts die with it: `run_nnunet` runs the nnU-Net tool in its own process group and kills the
whole group (the tool and its workers) when the caller gets SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FAKE_TOOL = '#!/bin/sh\nsleep 300 &\necho $! > "$1"\necho "Epoch 1"\nwait\n'  # a tool with one worker process


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().split(") ", 1)[-1].startswith("Z"))  # a zombie is dead


@pytest.mark.skipif(sys.platform == "win32", reason="process groups are POSIX")
def test_sigterm_kills_the_nnunet_tool_and_its_workers(tmp_path):
    (tmp_path / "bin").mkdir()
    tool = tmp_path / "bin" / "fake_nnunet"
    tool.write_text(FAKE_TOOL)
    tool.chmod(0o755)
    pid_file = tmp_path / "worker.pid"
    code = ("import os\nfrom pathlib import Path\nfrom mrgen_nnunet.trainers.nnunet_run import run_nnunet\n"
            f"env = dict(os.environ, PATH={str(tmp_path / 'bin')!r} + os.pathsep + os.environ['PATH'])\n"
            f"run_nnunet(['fake_nnunet', {str(pid_file)!r}], env, Path({str(tmp_path / 'log.txt')!r}))\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (pid_file.is_file() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.2)
    worker = int(pid_file.read_text())
    try:
        assert _alive(worker)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(60) != 0
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "the nnU-Net tool's worker outlived the killed caller"
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)
