"""`mrgen-nnunet env` and the one `--device auto` resolution."""

from __future__ import annotations

import json
import os
from importlib import metadata

import pytest
import torch

from mrgen_nnunet.cli.main import main
from mrgen_nnunet.environment import idle_cpus_between, resolve_device
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.trainers.nnunet_run import default_device
from mrgen_nnunet.trainers.shim import trainer_path


def test_resolve_device():
    assert resolve_device("auto") == default_device()
    assert [resolve_device(d) for d in ("cpu", "cuda", "cuda:1", "mps")] == ["cpu", "cuda", "cuda:1", "mps"]
    for bad in ("gpu", "cpu:1", "cuda:x", ""):
        with pytest.raises(MRGenError, match="--device"):
            resolve_device(bad)


def test_env_reports_versions_device_threads_variables_and_weights(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("nnUNet_raw", str(tmp_path))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "gone"))
    monkeypatch.delenv("nnUNet_preprocessed", raising=False)
    (tmp_path / "sam2.pt").write_bytes(b"\0" * 2**20)
    gen = tmp_path / "gen"
    (gen / "vae").mkdir(parents=True)
    (gen / "mrgen_generator.json").write_text(json.dumps({}), encoding="utf-8")
    assert main(["env", "--sam2-checkpoint", str(tmp_path / "sam2.pt"), "--biomedclip", str(tmp_path),
                 "--generator", str(gen)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "versions:" and f"  torch: {metadata.version('torch')}" in lines
    assert f"  mrgen-nnunet: {metadata.version('mrgen-nnunet')}" in lines
    assert f"  auto: {default_device()}" in lines and f"  torch threads: {torch.get_num_threads()}" in lines
    assert f"  nnUNet_raw: {tmp_path}" in lines and "  nnUNet_preprocessed: not set" in lines
    assert f"  nnUNet_results: {tmp_path / 'gone'} (missing folder)" in lines
    assert f"  for nnUNetv2_train: export nnUNet_extTrainer={trainer_path()}" in lines
    assert lines[-4:] == ["weights:", f"  sam2: {tmp_path / 'sam2.pt'}: found (1.0 MiB)",
                          f"  biomedclip: {tmp_path}: no open_clip_config.json in this folder",
                          f"  generator: {gen}: found (mrgen-nnunet generator: vae)"]


def test_env_without_paths_has_no_weights_section_and_names_missing_ones(tmp_path, capsys):
    assert main(["env"]) == 0
    assert "weights:" not in capsys.readouterr().out
    assert main(["env", "--generator", str(tmp_path / "nope")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"  generator: {tmp_path / 'nope'}: not found"


def test_unknown_device_is_one_line_error(tmp_path, capsys):
    assert main(["synthesize", "--target", "LGE", "--source", "101", "--generator", str(tmp_path),
                 "--out-raw", str(tmp_path), "--out-dataset", "501", "--device", "gpu"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrgen-nnunet: error: unknown device 'gpu' (--device)") and err.count("\n") == 1


def _program_env(env: dict, cpus: set[int] | None = None) -> list[str]:
    """The `threads:` lines of `python -m mrgen_nnunet env` (the program itself) run with `env`, on `cpus`."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "mrgen_nnunet", "env"], env=env, capture_output=True, text=True,
                         check=True, preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None).stdout
    lines = out.split("threads:\n")[1].split("\n", 5)[:5]
    idle = lines.pop(1)  # measured from the machine's load: 1..cpus available
    assert idle.startswith("  cpus idle at start: ") and 1 <= int(idle.split(": ")[1]) <= int(lines[0].split(": ")[1])
    return lines


def test_program_sets_the_thread_policy_before_torch():
    """The program sets OMP_WAIT_POLICY=PASSIVE and OMP_NUM_THREADS = the CPUs it may run on (the affinity mask,
    not the machine's count) before torch is imported, so torch runs that many threads; a user's values are kept.
    `env` reports both from inside the CLI process."""
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    allowed = sorted(os.sched_getaffinity(0))
    one = {allowed[0]}  # a taskset-like limit: 1 CPU even on a bigger machine
    assert _program_env(base, one) == ["  cpus available: 1", "  torch threads: 1",
                                       "  OMP_NUM_THREADS: 1 (mrgen-nnunet's thread policy)",
                                       "  OMP_WAIT_POLICY: PASSIVE (mrgen-nnunet's thread policy)"]
    assert _program_env({**base, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE"}) == [
        f"  cpus available: {len(allowed)}", "  torch threads: 1", "  OMP_NUM_THREADS: 1", "  OMP_WAIT_POLICY: ACTIVE"]
    off = _program_env({**base, "MRGEN_THREAD_POLICY": "off"}, one)  # the "before" of benchmarks/demo_wall_time.py
    assert off[2:] == ["  OMP_NUM_THREADS: not set", "  OMP_WAIT_POLICY: not set"]


def test_in_process_main_leaves_the_environment_alone(monkeypatch, capsys):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert main(["env"]) == 0 and "OMP_WAIT_POLICY" not in os.environ
    assert "  OMP_WAIT_POLICY: not set" in capsys.readouterr().out


def test_idle_cpus_between_two_proc_stat_readings():
    """Idle share per CPU = (idle + iowait) ticks / all ticks of the interval, summed over the CPUs asked for."""
    before = "cpu  10 0 10 100 0 0 0 0 0 0\ncpu0 5 0 5 50 0 0 0 0 0 0\ncpu1 5 0 5 50 0 0 0 0 0 0\nintr 1 2\n"
    # cpu0: 100 ticks all busy; cpu1: 80 idle + 10 iowait of 100
    after = "cpu  115 0 15 230 10 0 0 0 0 0\ncpu0 105 0 5 50 0 0 0 0 0 0\ncpu1 10 0 10 130 10 0 0 0 0 0\n"
    assert idle_cpus_between(before, after, {0, 1}) == pytest.approx(0.9)
    assert idle_cpus_between(before, after, {1}) == pytest.approx(0.9)
    assert idle_cpus_between(before, after, {0}) == 0.0
    assert idle_cpus_between(before, before, {0, 1}) == 2.0  # no ticks elapsed: nothing seen running
    assert idle_cpus_between(before, after, {7}) == 0.0  # a CPU /proc/stat does not list


def test_program_takes_one_thread_beside_a_busy_job_on_two_cpus():
    """A CPU-bound process on one of the two CPUs the program may use: the policy leaves that CPU to it
    (OMP_NUM_THREADS=1, torch 1 thread) instead of sharing it (issue 19); idle, it takes both."""
    import subprocess
    import sys

    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("needs 2 CPUs")
    pair = set(allowed[:2])
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            preexec_fn=lambda: os.sched_setaffinity(0, {allowed[0]}))
    try:
        busy = _program_env(base, pair)
    finally:
        spin.kill()
        spin.wait()
    assert busy[1:3] == ["  torch threads: 1", "  OMP_NUM_THREADS: 1 (mrgen-nnunet's thread policy)"]
