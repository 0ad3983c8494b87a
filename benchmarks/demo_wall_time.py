"""Wall time of `mrgen-nnunet demo` on a quiet machine and beside one CPU-bound job, with and without the thread
policy (issue 19; `mrgen_nnunet/environment.apply_thread_policy`).

Up to four runs of the real demo from the same installed .venv, each into a fresh folder, chosen by `--runs`
(indices into RUNS): 0 policy off quiet, 1 policy on quiet, 2 policy off beside a busy job, 3 policy on beside a
busy job. An index given again is a repeat (`--runs 1,3,1,3`: two interleaved pairs), kept apart. "Off" =
`MRGEN_THREAD_POLICY=off` with no `OMP_*` variables set: what the tool did before the policy; "on" = the default. The busy job is one process spinning a 1-thread float32 matmul loop (a CPU-bound neighbour
such as another user's training), started before the demo and killed after it. Per run: wall time, and the wall
time of each demo stage read from the demo's own progress lines, the longest silence of its output (a pipe, as
in `make demo > log`); the quiet policy-on run keeps its contact sheet.
A run past `--limit-minutes` is stopped and reported as stopped at that time (a lower bound). Run it on a machine with nothing else running:

    .venv/bin/python benchmarks/demo_wall_time.py --out benchmarks/results/demo_wall_time
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RUNS = [("off", "quiet"), ("on", "quiet"), ("off", "beside 1 busy job"), ("on", "beside 1 busy job")]
BUSY = ("import os, torch\nos.nice(0)\ntorch.set_num_threads(1)\na = torch.randn(512, 512)\n"
        "while True:\n    a = torch.tanh(a @ a)\n")


def clean_env(policy: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "nnUNet_"))}
    env["MRGEN_THREAD_POLICY"] = policy
    return env


def run_demo(policy: str, busy: bool, limit_s: float, keep: Path, picture: bool = True) -> dict:
    mrgen = Path(sys.executable).with_name("mrgen-nnunet")
    with tempfile.TemporaryDirectory(prefix="demo_wall_") as tmp:
        neighbour = subprocess.Popen([sys.executable, "-c", BUSY], env=clean_env("on")) if busy else None
        if neighbour:
            time.sleep(3)  # let it import torch and start spinning
        start = time.perf_counter()
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        log = keep.with_suffix(".log")
        arrivals: list[tuple[float, str]] = []  # (seconds since start, line): the longest silence of the log
        with log.open("w") as out:
            proc = subprocess.Popen([str(mrgen), "demo", "--out", str(Path(tmp) / "demo")], env=clean_env(policy),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    start_new_session=True)

            def read():  # the demo's stdout is a pipe, as in `make demo > log`
                for line in proc.stdout:
                    out.write(line)
                    out.flush()
                    if line.strip():
                        arrivals.append((time.perf_counter() - start, line.strip()[:80]))

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            try:
                rc = proc.wait(timeout=limit_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                rc = None
            reader.join(timeout=10)
        wall = time.perf_counter() - start
        # CPU seconds of the demo and the processes it waited for (its trainings), read before the neighbour is
        # reaped: cpu_s / wall_s of a quiet run = the cores it kept busy (its slowdown's floor beside a busy job)
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
        gaps = [(b[0] - a[0], a[1]) for a, b in itertools.pairwise([(0.0, "start"), *arrivals])]
        longest = max(gaps, default=(wall, "no output"))
        if neighbour:
            neighbour.kill()
            neighbour.wait()
        if picture and policy == "on" and not busy:  # the picture is the same in every run: keep one
            for png in sorted((Path(tmp) / "demo").rglob("contact_sheet.png"))[:1]:
                shutil.copy(png, keep.with_name(keep.name + "_contact_sheet.png"))
    text = log.read_text(errors="replace")
    return {"policy": policy, "load": "beside 1 busy job" if busy else "quiet", "returncode": rc,
            "stopped_at_limit": rc is None, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "stages": stage_times(text), "log": log.name,
            "longest_silence_s": round(longest[0], 1), "longest_silence_after": longest[1]}


def stage_times(text: str) -> dict[str, str]:
    """The last elapsed stamp `[h:mm:ss]` printed with each demo stage name (the demo's own progress lines)."""
    stages = {}
    for stamp, line in re.findall(r"\[(\d+:\d\d:\d\d)\] (.*)", text):
        stages[line.split(":")[0].strip()[:60]] = stamp
    return stages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "demo_wall_time")
    ap.add_argument("--limit-minutes", type=float, default=25.0)
    ap.add_argument("--runs", default="0,1,2,3", help="which of the four runs (indices), e.g. 0,1")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result_file = args.out / "demo_wall_time.json"
    results = json.loads(result_file.read_text()) if result_file.exists() else {"runs": []}
    autogroup = Path("/proc/sys/kernel/sched_autogroup_enabled")  # 1: the kernel shares CPU per session, not process
    results.update(machine=f"{platform.node()} {os.cpu_count()} CPUs", python=platform.python_version(),
                   autogroup=autogroup.read_text().strip() if autogroup.exists() else "n/a",
                   command=" ".join(["benchmarks/demo_wall_time.py", *sys.argv[1:]]))
    indices = [int(k) for k in args.runs.split(",")]
    for n, i in enumerate(indices):
        policy, load = RUNS[i]
        repeat = indices[:n].count(i)  # a run index given twice (e.g. 1,3,1,3: interleaved repeats) keeps both
        keep = args.out / f"run{i}_{policy}_{load.split()[0]}{f'_r{repeat}' if repeat else ''}"
        print(f"run {i} (repeat {repeat}): policy {policy}, {load} ...", flush=True)
        row = run_demo(policy, load != "quiet", args.limit_minutes * 60, keep, picture=repeat == 0)
        row["repeat"] = repeat
        row["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        row["commit"] = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True).stdout.strip()  # the package code the demo ran
        same = (policy, load, repeat)
        results["runs"] = [r for r in results["runs"] if (r["policy"], r["load"], r.get("repeat", 0)) != same] + [row]
        results["summary"] = summary(results["runs"])
        result_file.write_text(json.dumps(results, indent=2) + "\n")
        print(f"  {row['wall_s'] / 60:.1f} min{' (stopped at the limit)' if row['stopped_at_limit'] else ''}",
              flush=True)
    print(json.dumps(results["summary"], indent=1))


def summary(runs: list[dict]) -> dict:
    """Per policy: median wall time quiet and beside a busy job, their ratio, and the ratio of each repeat pair
    (quiet repeat k with busy repeat k, run back to back: the machine's drift cancels)."""
    out = {}
    for policy in sorted({r["policy"] for r in runs}):
        walls = {load: {r.get("repeat", 0): r["wall_s"] for r in runs if (r["policy"], r["load"]) == (policy, load)}
                 for load in ("quiet", "beside 1 busy job")}
        quiet, busy = walls["quiet"], walls["beside 1 busy job"]
        if not quiet or not busy:
            continue
        med_q, med_b = statistics.median(quiet.values()), statistics.median(busy.values())
        out[policy] = {"quiet_median_s": med_q, "busy_median_s": med_b, "ratio_of_medians": round(med_b / med_q, 2),
                       "pair_ratios": [round(busy[k] / quiet[k], 2) for k in sorted(quiet) if k in busy]}
    return out


if __name__ == "__main__":
    main()
