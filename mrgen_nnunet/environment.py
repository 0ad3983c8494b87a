"""What `mrgen-nnunet env` reports, the one device resolution every command uses, and the CPU thread policy.

`environment_report()` returns ordered (section, [(key, value), ...]) pairs of plain strings; `format_report` turns
them into the text the command prints. Only `apply_thread_policy` changes the environment (the program calls it
once, at start).
"""

from __future__ import annotations

import functools
import os
import sys
import time
from importlib import metadata
from pathlib import Path

from mrgen_nnunet.errors import MRGenError

PACKAGES = ("mrgen-nnunet", "torch", "diffusers", "nnunetv2", "sam2", "accelerate", "open_clip_torch")
NNUNET_VARIABLES = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer")
DEVICES = ("auto", "cuda", "mps", "cpu")


def resolve_device(device: str, option: str = "--device") -> str:
    """'auto' -> the first of cuda, mps, cpu that is available; 'cuda', 'cuda:N', 'mps', 'cpu' as given."""
    from mrgen_nnunet.trainers.nnunet_run import default_device

    if device == "auto":
        return default_device()
    kind, _, index = device.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
        raise MRGenError(f"unknown device {device!r}", option, "use auto, cuda, cuda:N, mps or cpu")
    return device


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def usable_cpus() -> int:
    """CPUs this process may run on (the affinity mask, e.g. a cgroup or taskset), else os.cpu_count()."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def idle_cpus_between(before: str, after: str, cpus: set[int]) -> float:
    """Idle CPUs (0..len(cpus)) between two readings of /proc/stat: the sum over `cpus` of each one's idle share
    (idle + iowait ticks / all ticks) of the interval. A CPU with no ticks in the interval counts as idle."""
    def ticks(text: str) -> dict[int, tuple[int, int]]:  # cpu -> (idle ticks, all ticks)
        out = {}
        for line in text.splitlines():
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
                out[int(name[3:])] = (values[3] + values[4], sum(values))
        return out

    first, second = ticks(before), ticks(after)
    idle = 0.0
    for cpu in cpus:
        if cpu in first and cpu in second:
            spent = second[cpu][1] - first[cpu][1]
            idle += (second[cpu][0] - first[cpu][0]) / spent if spent > 0 else 1.0
    return idle


@functools.lru_cache(maxsize=1)
def free_cpus(window_s: float = 0.25) -> int:
    """CPUs of `usable_cpus()` that other processes left idle, measured once per process over `window_s` from
    /proc/stat (1..usable_cpus(); where /proc/stat is missing, usable_cpus()). Beside one CPU-bound job on 2 cores
    this is 1: a second thread or job would share a core with it and, at every synchronisation, wait for it."""
    usable = usable_cpus()
    stat = Path("/proc/stat")
    if not stat.is_file() or not hasattr(os, "sched_getaffinity"):
        return usable
    before = stat.read_text()
    time.sleep(window_s)
    idle = idle_cpus_between(before, stat.read_text(), os.sched_getaffinity(0))
    return max(1, min(usable, round(idle)))


# the variables apply_thread_policy set because the user had not (shown by `mrgen-nnunet env`)
POLICY_SET: dict[str, str] = {}


def apply_thread_policy() -> None:
    """The CPU thread policy of the `mrgen-nnunet` program, applied at its start, before torch is imported:

    - `OMP_WAIT_POLICY=PASSIVE` unless the user set it: an OpenMP thread that waits for work sleeps instead of
      spinning, so a run beside other CPU jobs does not burn the shared cores (spinning threads ran the generator
      stages 13-40x slower on a busy 2-core machine, issue 19).
    - `OMP_NUM_THREADS` = the CPUs this process may run on (`os.sched_getaffinity`: a taskset or cgroup limit, not
      the machine's core count) that other processes left idle at start (`free_cpus`, 0.25 s of /proc/stat),
      unless the user set it. torch takes its thread count from it when imported, and child processes inherit it
      (`nnUNetTrainerMRGen*` sets torch to it inside `nnUNetv2_train`). Beside one busy job on 2 cores a command
      thus runs 1 thread instead of sharing the busy core (an nnU-Net epoch there: 82 s at 1 thread, 134 s at 2).
      The benchmark and the demo with `jobs` > 1 give each job usable_cpus() // jobs threads instead.

    Variables the user set are kept as they are; `MRGEN_THREAD_POLICY=off` leaves the environment alone (the
    "before" rows of benchmarks/demo_wall_time.py). When torch is already imported (a caller embedding the CLI), its
    thread count is set directly.
    """
    if os.environ.get("MRGEN_THREAD_POLICY", "").strip().lower() == "off":
        return
    if not os.environ.get("OMP_WAIT_POLICY", "").strip():
        os.environ["OMP_WAIT_POLICY"] = POLICY_SET["OMP_WAIT_POLICY"] = "PASSIVE"
    if not os.environ.get("OMP_NUM_THREADS", "").strip():
        os.environ["OMP_NUM_THREADS"] = POLICY_SET["OMP_NUM_THREADS"] = str(free_cpus())
    threads = os.environ["OMP_NUM_THREADS"]
    if "torch" in sys.modules and threads.isdigit() and int(threads) > 0:
        sys.modules["torch"].set_num_threads(int(threads))


def _folder(value: str | None) -> str:
    if not value:
        return "not set"
    return value if Path(value).is_dir() else f"{value} (missing folder)"


def _weights(kind: str, path: Path) -> str:
    """One line on a local weights path given by the user: what was found there."""
    if not path.exists():
        return f"{path}: not found"
    if kind == "sam2":
        return f"{path}: found ({path.stat().st_size / 2**20:.1f} MiB)" if path.is_file() else f"{path}: not a file"
    if kind == "biomedclip":
        ok = (path / "open_clip_config.json").is_file()
        return f"{path}: {'found (open_clip folder)' if ok else 'no open_clip_config.json in this folder'}"
    from mrgen_nnunet.generator.folder import CONFIG_FILE, is_mrgen_layout

    if (path / CONFIG_FILE).is_file():
        stages = [s for s in ("vae", "unet", "controlnet") if (path / s).is_dir()]
        return f"{path}: found (mrgen-nnunet generator: {', '.join(stages) or 'no stages yet'})"
    if is_mrgen_layout(path):
        return f"{path}: found (MRGen's released layout)"
    return f"{path}: not a generator folder (no {CONFIG_FILE}, not MRGen's layout)"


def environment_report(weights: dict[str, Path | None] | None = None) -> list[tuple[str, list[tuple[str, str]]]]:
    """Versions, device, threads, nnU-Net variables and (for the paths given) local weights.

    `weights` maps 'sam2' | 'biomedclip' | 'generator' to a path or None (not checked).
    """
    import torch

    from mrgen_nnunet.trainers.shim import trainer_path

    versions = [(p, _version(p)) for p in PACKAGES]
    device = [("auto", resolve_device("auto")), ("cuda devices", str(torch.cuda.device_count()))]
    def variable(key: str) -> str:
        value = os.environ.get(key, "not set")
        return f"{value} (mrgen-nnunet's thread policy)" if POLICY_SET.get(key) == value else value

    threads = [("cpus available", str(usable_cpus())), ("cpus idle at start", str(free_cpus())), ("torch threads", str(torch.get_num_threads())),
               ("OMP_NUM_THREADS", variable("OMP_NUM_THREADS")), ("OMP_WAIT_POLICY", variable("OMP_WAIT_POLICY"))]
    nnunet = [(k, _folder(os.environ.get(k))) for k in NNUNET_VARIABLES]
    nnunet.append(("for nnUNetv2_train", f"export nnUNet_extTrainer={trainer_path()}"))
    report = [("versions", versions), ("device", device), ("threads", threads), ("nnU-Net", nnunet)]
    given = [(k, _weights(k, Path(v))) for k, v in (weights or {}).items() if v is not None]
    if given:
        report.append(("weights", given))
    return report


def format_report(report: list[tuple[str, list[tuple[str, str]]]]) -> str:
    """Sections as `section:` then `  key: value` lines."""
    lines = []
    for section, rows in report:
        lines.append(f"{section}:")
        lines += [f"  {k}: {v}" for k, v in rows]
    return "\n".join(lines)
