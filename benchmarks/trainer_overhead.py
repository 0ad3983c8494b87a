"""Per-iteration cost of nnUNetTrainerMRGen (weighted real:synthetic sampling), nnUNetTrainerMRGenAug
(on-the-fly appearance redraw) and nnUNetTrainerMRGenAugIPA (+ IPA blends) vs nnUNetTrainer, same data.

Default data: the tiny 32x32 slice dataset of the tests (tests/mrgen_fixtures.py) (25 cases, 10 synthetic, ratio 1.0), planned once
with the real nnU-Net planner. `--preprocessed DIR --dataset NAME --plans NAME` times an already preprocessed
dataset instead (e.g. the quality benchmark's MS-CMRSeg source slices at 2.5 mm: patch 96², batch 16, the size
that matters). The trainers are constructed in-process on the same plans/split and timed interleaved A/B/C so
machine load hits all alike:
  - loader: one `next(dataloader_train)` (sampling + loading + augmentation),
  - step: loader + `train_step` (forward/backward on CPU).
Prints medians over --repeats and the MRGen/plain ratios.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/trainer_overhead.py --repeats 200
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/trainer_overhead.py --repeats 40 \
        --preprocessed runs/mscmrseg_quality/nnUNet_preprocessed --dataset Dataset300_source --plans mrgenPlans_2.5mm
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

TRAINERS = ("nnUNetTrainerMRGen", "nnUNetTrainerMRGenAug", "nnUNetTrainerMRGenAugIPA")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--preprocessed", type=Path, default=None, help="nnUNet_preprocessed of an existing run")
    parser.add_argument("--dataset", default="Dataset501_Tiny")
    parser.add_argument("--plans", default="nnUNetPlans")
    parser.add_argument("--json", type=Path, default=None, help="also write the medians here")
    parser.add_argument("--trainers", default=",".join(TRAINERS),
                        help="comma-separated, timed against nnUNetTrainer (always included)")
    args = parser.parse_args()

    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    from mrgen_nnunet.trainers import trainer_classes
    from mrgen_nnunet.trainers.nnunet_run import nnunet_environment, plan_and_preprocess

    root = args.workdir or Path(tempfile.mkdtemp(prefix="trainer_overhead_"))
    if args.preprocessed is None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from mrgen_fixtures import write_tiny_dataset  # the same tiny dataset the tests use

        env = nnunet_environment(root / "raw", root / "pre", root / "res", n_proc_da=0, n_proc=1)
        write_tiny_dataset(root / "raw")
        pre = plan_and_preprocess(501, env)
    else:
        env = nnunet_environment(root / "raw", args.preprocessed, root / "res", n_proc_da=0, n_proc=1)
        pre = args.preprocessed.resolve() / args.dataset
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_n_proc_DA", "nnUNet_def_n_proc"):
        os.environ[key] = env[key]  # in-process nnU-Net reads its folders from the environment
    torch.set_num_threads(1)

    dataset_json = json.loads((pre / "dataset.json").read_text(encoding="utf-8"))
    registry = trainer_classes()
    classes = {name: registry[name] for name in args.trainers.split(",") if name != "nnUNetTrainer"}
    trainers = {}
    # an MRGen trainer first: it writes the patient-grouped split that the plain trainer then reads
    for name, cls in (*classes.items(), ("nnUNetTrainer", nnUNetTrainer)):
        plans = json.loads((pre / f"{args.plans}.json").read_text(encoding="utf-8"))
        plans["continue_training"] = False
        t = cls(plans, "2d", 0, dataset_json, device=torch.device("cpu"))
        t.initialize()
        t.dataloader_train, t.dataloader_val = t.get_dataloaders()
        t.network.train()
        trainers[name] = t
    keys = {n: sorted(t.dataloader_train.data_loader.indices) for n, t in trainers.items()}
    assert all(k == keys["nnUNetTrainer"] for k in keys.values()), "trainers see different training cases"

    loader, step = {n: [] for n in trainers}, {n: [] for n in trainers}
    for _ in range(args.repeats):
        for name, t in trainers.items():
            t0 = time.perf_counter()
            batch = next(t.dataloader_train)
            t1 = time.perf_counter()
            t.train_step(batch)
            t2 = time.perf_counter()
            loader[name].append(t1 - t0)
            step[name].append(t2 - t0)
    print(f"{args.repeats} interleaved iterations, batch {trainers['nnUNetTrainer'].batch_size}, patch "
          f"{trainers['nnUNetTrainer'].configuration_manager.patch_size}, {len(keys['nnUNetTrainer'])} training cases")
    medians = {}
    for label, table in (("loader next()", loader), ("loader + train_step", step)):
        med = {n: statistics.median(v) * 1000 for n, v in table.items()}
        medians[label] = med
        print(f"{label:20s}  nnUNetTrainer {med['nnUNetTrainer']:.2f} ms  "
              + "  ".join(f"{n} {med[n]:.2f} ms (ratio {med[n] / med['nnUNetTrainer']:.3f})"
                          for n in classes))
    if args.json is not None:
        args.json.write_text(json.dumps({"repeats": args.repeats, "dataset": args.dataset, "plans": args.plans,
                                         "batch_size": trainers["nnUNetTrainer"].batch_size,
                                         "patch_size": list(trainers["nnUNetTrainer"].configuration_manager.patch_size),
                                         "median_ms": medians}, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
