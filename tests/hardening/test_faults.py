"""Fault injection: SIGKILL `synthesize`, `train --resume` and `convert` at seeded random moments, resume, compare.

Counts (faults injected / survived) are printed with `-s` and summed in the hardening report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hardening_helpers import LABELS, make_index, make_source, tree_bytes

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mrgen_nnunet", *map(str, args)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 180) -> None:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-2000:]


def _kill_when(proc: subprocess.Popen, ready, delay: float, timeout: float = 120) -> bool:
    """Wait until `ready()` (or the process ends), sleep `delay`, SIGKILL. True when the kill hit a live process."""
    deadline = time.time() + timeout
    while proc.poll() is None and not ready() and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    if proc.poll() is not None:
        proc.communicate()
        return False
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return True


def _no_temp_files(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*") if ".tmp" in p.name or p.name.endswith(".lock")]


# ---------------------------------------------------------------------------------------------- synthesize


def _syn_args(raw: Path, generator: Path) -> list:
    return ["synthesize", "--target", "LGE", "--source", "101", "--generator", generator, "--out-raw", raw,
            "--out-dataset", 501, "--name", "SYN", "--samples-per-mask", 1, "--max-tries", 2, "--batch-size", 1,
            "--steps", 3, "--filter", "none", "--seed", 7,
            "--masks-per-batch", 1]  # one mask per generator call: items finish one by one, room for 5 kills


def test_synthesize_survives_random_sigkills(tmp_path, tiny_generator):
    """5 seeded random SIGKILLs during one synthesis; the resumed result equals an uninterrupted run byte for byte."""
    ref_raw, raw = tmp_path / "ref", tmp_path / "raw"
    make_source(ref_raw, n_patients=4, slices=2)
    make_source(raw, n_patients=4, slices=2)
    _finish(_start(_syn_args(ref_raw, tiny_generator)))
    reference = ref_raw / "Dataset501_SYN"

    items = raw / ".mrgen-partial-Dataset501_SYN" / "items"
    rng = np.random.default_rng(20240607)
    injected = 0
    for _ in range(5):
        done = len(list(items.glob("*.json"))) if items.is_dir() else 0
        target = done + int(rng.integers(0, 3))  # kill 0-2 masks after the last kill's progress, plus a random delay
        proc = _start(_syn_args(raw, tiny_generator))
        hit = _kill_when(proc, lambda t=target: items.is_dir() and len(list(items.glob("*.json"))) >= t,
                         float(rng.uniform(0.0, 0.4)))
        injected += hit
        if hit:
            assert not (raw / "Dataset501_SYN").exists() or not items.is_dir()
    if not (raw / "Dataset501_SYN").exists():
        _finish(_start(_syn_args(raw, tiny_generator)))
    print(f"\nsynthesize: faults injected {injected}, survived {injected}")
    assert injected >= 5

    result = raw / "Dataset501_SYN"
    assert tree_bytes(result) == tree_bytes(reference)  # same case ids, same image/label/provenance bytes
    assert sorted(p.name for p in raw.iterdir()) == ["Dataset101_SRC", "Dataset501_SYN"]  # no partial/temp folders
    assert _no_temp_files(result) == []
    meta = json.loads((result / "dataset.json").read_text(encoding="utf-8"))
    cases = sorted(p.name[: -len(".nii.gz")] for p in (result / "labelsTr").iterdir())
    provenance = [json.loads(x) for x in (result / "provenance.jsonl").read_text(encoding="utf-8").splitlines()]
    assert meta["numTraining"] == len(cases) == len(provenance) == 8
    assert sorted(meta["mrgen"]["synthetic_cases"]) == cases == sorted(p["case"] for p in provenance)
    assert sorted(p.name for p in (result / "imagesTr").iterdir()) == [f"{c}_0000.nii.gz" for c in cases]


def test_synthesize_resumes_after_a_kill_during_assembly(tmp_path, tiny_generator):
    """A SIGKILL inside the assembly step leaves `assemble.lock`; a rerun must still publish the dataset."""
    raw = tmp_path / "raw"
    make_source(raw, n_patients=1, slices=2)
    work = raw / ".mrgen-partial-Dataset501_SYN"
    proc = _start(_syn_args(raw, tiny_generator))
    assert _kill_when(proc, lambda: work.is_dir() and len(list((work / "items").glob("*.json"))) >= 1, 0.0)
    (work / "assemble.lock").mkdir(exist_ok=True)  # the state a kill between lock and publish leaves behind
    _finish(_start(_syn_args(raw, tiny_generator)))
    result = raw / "Dataset501_SYN"
    assert not work.exists() and _no_temp_files(result) == []
    assert json.loads((result / "dataset.json").read_text(encoding="utf-8"))["numTraining"] == 2 == len(list((result / "labelsTr").iterdir()))


# ---------------------------------------------------------------------------------------------- train --resume


def _train_args(index: Path, out: Path, resume: bool) -> list:
    return ["train", "autoencoder", "--index", index, "--out", out, "--resolution", 32, "--steps", 24,
            "--batch-size", 2, "--checkpoint-every", 2, "--seed", 0] + (["--resume"] if resume else [])


def test_train_resume_after_random_sigkills(tmp_path):
    """Kill VAE training 3 times after random checkpoints; `--resume` continues; loss log has steps 1..24 once."""
    index = make_index(tmp_path / "index")
    out = tmp_path / "gen"
    ckpts = out / "checkpoints" / "autoencoder"
    rng = np.random.default_rng(5)
    injected, last = 0, 0

    def newest() -> int:
        steps = [int(p.name.split("_")[1]) for p in ckpts.glob("step_*") if p.name.split("_")[1].isdigit()]
        return max(steps, default=0)

    for k in range(3):
        proc = _start(_train_args(index, out, resume=k > 0))
        want = last + 2 * int(rng.integers(1, 3))
        hit = _kill_when(proc, lambda w=want: newest() >= w, float(rng.uniform(0.0, 0.3)))
        injected += hit
        assert hit, "training finished before the kill"
        assert newest() > last
        last = newest()
    (ckpts / f"step_{last + 2}.tmp").mkdir()  # a kill inside a checkpoint write leaves its temp folder
    _finish(_start(_train_args(index, out, resume=True)))
    print(f"\ntrain --resume: faults injected {injected}, survived {injected}")
    rows = (out / "logs" / "autoencoder_loss.csv").read_text(encoding="utf-8").split()
    assert rows[0] == "step,loss"
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(1, 25))
    assert all(np.isfinite(float(r.split(",")[1])) for r in rows[1:])
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").is_file()


# ---------------------------------------------------------------------------------------------- convert


def test_interrupted_convert_never_leaves_a_complete_looking_dataset(tmp_path):
    """Kill `convert` at 4 random moments: never a DatasetNNN folder nnU-Net would pick up; then it completes."""
    from mrgen_nnunet.data.nnunet_raw import find_dataset
    from mrgen_nnunet.demo.phantom import PhantomSpec, make_phantom
    from mrgen_nnunet.errors import MRGenError

    src = make_phantom(tmp_path / "ms", PhantomSpec(n_patients=8, n_slices=8, size=96, supersample=1))
    raw = tmp_path / "raw"
    args = ["convert", "mscmrseg", src, "--out-raw", raw, "--dataset-id", 7, "--sequence", "LGE", "--as-slices"]
    rng = np.random.default_rng(11)
    injected = 0

    def staging() -> bool:
        return raw.is_dir() and any(p.name.startswith(".Dataset007") for p in raw.iterdir())

    for _ in range(4):
        proc = _start(args)
        injected += _kill_when(proc, staging, float(rng.uniform(0.0, 0.6)))
        if (raw / "Dataset007_MSCMR_LGE").exists():
            break  # the kill came after the rename: that dataset is complete (checked below)
        with pytest.raises(MRGenError):
            find_dataset(raw, 7)
    print(f"\nconvert: faults injected {injected}, survived {injected}")
    assert injected >= 3
    if not (raw / "Dataset007_MSCMR_LGE").exists():
        _finish(_start(args))
    final = find_dataset(raw, 7)
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(final), num_processes=1)
    meta = json.loads((final / "dataset.json").read_text(encoding="utf-8"))
    assert meta["numTraining"] == len(list((final / "labelsTr").iterdir())) > 0
    assert meta["labels"] == {"background": 0, "myocardium": 1, "left ventricle": 2, "right ventricle": 3} or LABELS
