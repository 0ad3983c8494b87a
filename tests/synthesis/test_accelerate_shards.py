"""Scale-out on a real engine: `accelerate launch --num_processes 2 -m mrgen_nnunet synthesize` (2 CPU processes,
each takes its RANK's share of the manifest) gives the same dataset, byte for byte, as one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from synthesis_helpers import make_source_dataset, tree_bytes

from mrgen_nnunet.cli.main import main


def json_objects(text: str) -> list[dict]:
    """The JSON objects printed one after another (each rank prints its summary)."""
    decoder, i, out = json.JSONDecoder(), 0, []
    while (i := text.find("{", i)) != -1:
        obj, i = decoder.raw_decode(text, i)
        out.append(obj)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_accelerate_processes_equal_one_process(tmp_path, generator, capsys):
    args = ["synthesize", "--target", "LGE", "--source", "101", "--generator", str(generator), "--out-dataset", "520",
            "--name", "SCALE", "--profile", "fast", "--masks-per-batch", "1", "--samples-per-mask", "1",
            "--max-tries", "2", "--steps", "2", "--filter", "none"]
    one, two = tmp_path / "one", tmp_path / "two"
    for raw in (one, two):
        make_source_dataset(raw, n_patients=2, slices=2)  # 4 slices, 3 with foreground: chunks 0, 2 | 1, 3
    import torch

    torch.set_num_threads(1)  # as each worker (OMP_NUM_THREADS=1): float rounding depends on the thread count
    assert main([*args, "--out-raw", str(one), "--shard", "0/1"]) == 0
    capsys.readouterr()

    accelerate = Path(sys.executable).parent / "accelerate"
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
           "-m", "mrgen_nnunet", *args, "--out-raw", str(two)]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "nnUNet_raw")}
    proc = subprocess.run(cmd, env=dict(env, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summaries = json_objects(proc.stdout)
    assert len(summaries) == 2  # both ranks ran; exactly one published the dataset
    assert sorted(s["complete"] for s in summaries) == [False, True]
    assert tree_bytes(two / "Dataset520_SCALE") == tree_bytes(one / "Dataset520_SCALE")
    prov = (two / "Dataset520_SCALE" / "provenance.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(prov) == 3 and not any(p.name.startswith(".") for p in two.iterdir())
