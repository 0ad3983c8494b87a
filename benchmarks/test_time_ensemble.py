"""Test-time ensemble of a benchmark run's trained rows (issue 17): what `nnUNetv2_ensemble` of two models gives.

For each seed, every named row's model (the run's own, found through its ledger) predicts the run's test volumes
with `--save_probabilities` (`nnUNetv2_predict_from_modelfolder`, mirror TTA as in the benchmark), the softmax maps
are averaged by `nnUNetv2_ensemble`, and the result is scored as a row is (`evaluate_folder`); each member is
re-scored from its own predictions too (it must match its row's result). The ensemble's results are written as
`<out>/rows/<name>/seed<N>/result.json` and paired against each member row of the same seed.
The members are fixed before looking at any figure (e.g. the last self-training round's two students); nothing
is chosen from the test volumes.

    .venv/bin/python benchmarks/test_time_ensemble.py --bench /work/bench/runs/mscmrseg_quality \
        --config benchmarks/configs/mscmrseg_quality.toml --rows selftrain2-ft-ens,selftrain2-ft-ipa --seeds 0,1 \
        --out benchmarks/results/test_time_ensemble
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mrgen_nnunet.benchmark.build import row_dataset_key, seed_environment
from mrgen_nnunet.benchmark.config import BenchmarkConfig, load_config
from mrgen_nnunet.benchmark.ledger import Ledger
from mrgen_nnunet.benchmark.plans import plans_name
from mrgen_nnunet.benchmark.report import RowResult, paired_difference
from mrgen_nnunet.benchmark.rows import ROWS, row_trainer
from mrgen_nnunet.benchmark.training import result_from_metrics
from mrgen_nnunet.data.io import write_text_atomic
from mrgen_nnunet.data.nnunet_raw import find_dataset, read_dataset_json
from mrgen_nnunet.evaluation.metrics import evaluate_folder
from mrgen_nnunet.trainers.nnunet_run import model_folder, nnunet_environment, run_nnunet

FOLD = 0


def model_of(bench: Path, ledger: dict, name: str, seed: int, cfg: BenchmarkConfig) -> Path:
    """The trained model folder (`<trainer>__<plans>__2d`) of row `name` for `seed` in the run at `bench`: a merged
    row's dataset through the benchmark's own ledger key, a one-part row's through its part (source or target)."""
    row = ROWS[name]
    if len(row.parts) > 1:
        key = row_dataset_key(row, seed, cfg.real_to_synthetic_ratio if row.uses_ratio else None)
    else:
        key = row.parts[0]
    if key not in ledger:
        raise SystemExit(f"{bench}: row {name!r} seed {seed} has no dataset in the ledger ({key}); run the row first")
    dataset = find_dataset(bench / "nnUNet_raw", ledger[key]["id"]).name
    model = model_folder(bench / "nnUNet_results" / f"seed{seed}", dataset, row_trainer(row, cfg.trainer),
                         plans_name(cfg.spacing_mm))
    if not (model / f"fold_{FOLD}" / "checkpoint_final.pth").is_file():
        raise SystemExit(f"{model}: no finished model of row {name!r} seed {seed}; run the row first")
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, required=True, help="the benchmark run's out folder")
    parser.add_argument("--config", type=Path, required=True, help="the config the run was made with")
    parser.add_argument("--rows", required=True, help="the member rows, comma-separated")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    cfg = load_config(args.config)
    bench, rows, seeds = args.bench.resolve(), args.rows.split(","), [int(s) for s in args.seeds.split(",")]
    name = "ensemble:" + "+".join(rows)
    ledger = Ledger(bench / "ledger.json", cfg.first_dataset_id, bench / "nnUNet_raw").entries
    test = find_dataset(bench / "nnUNet_raw", ledger["test"]["id"])
    labels = read_dataset_json(test)["labels"]
    env = nnunet_environment(bench / "nnUNet_raw", bench / "nnUNet_preprocessed", bench / "nnUNet_results",
                             n_proc_da=0)
    work = args.out / "work"
    summary = {"bench": str(bench), "rows": rows, "seeds": seeds, "members": {}, "results": {}, "paired": {}}
    results: list[RowResult] = []
    for seed in seeds:
        t0 = time.perf_counter()
        member_dirs = []
        for row in rows:
            model = model_of(bench, ledger, row, seed, cfg)
            pred = work / f"seed{seed}" / row
            if not (pred / "done").is_file():
                print(f"seed {seed}: predicting with {row} ({model.parent.name})", flush=True)
                pred.mkdir(parents=True, exist_ok=True)
                run_nnunet(["nnUNetv2_predict_from_modelfolder", "-i", str(test / "imagesTr"), "-o", str(pred),
                            "-m", str(model), "-f", str(FOLD), "-chk", "checkpoint_final.pth", "-device", cfg.device,
                            "-npp", "1", "-nps", "1", "--save_probabilities", "--disable_progress_bar"],
                           seed_environment(env, seed), pred / "predict.log", description=f"predict {row}")
                (pred / "done").touch()
            member_dirs.append(str(pred))
            # the member re-scored from these predictions: must equal the row's own result (same model, same TTA)
            rescored = result_from_metrics(row, seed, evaluate_folder(pred, test / "labelsTr", labels,
                                                                      work / f"seed{seed}" / f"evaluation_{row}"))
            summary["members"].setdefault(row, {})[str(seed)] = rescored.mean_dice
        ens = work / f"seed{seed}" / "ensemble"
        run_nnunet(["nnUNetv2_ensemble", "-i", *member_dirs, "-o", str(ens), "-np", "1"],
                   seed_environment(env, seed), work / f"seed{seed}" / "ensemble.log", description="ensemble")
        metrics = evaluate_folder(ens, test / "labelsTr", labels, work / f"seed{seed}" / "evaluation")
        result = result_from_metrics(name, seed, metrics, train_cases=0, trainer="+".join(rows),
                                     seconds={"predict_and_ensemble": time.perf_counter() - t0})
        write_text_atomic(json.dumps(result.to_dict(), indent=1) + "\n",
                          args.out / "rows" / name.replace(":", "_") / f"seed{seed}" / "result.json")
        results.append(result)
        summary["results"][str(seed)] = {"mean_dice": result.mean_dice, "dice": result.dice}
        print(f"seed {seed}: ensemble mean Dice {result.mean_dice:.3f} {result.dice}", flush=True)
    for row in rows:
        members = [RowResult.from_dict(json.loads((bench / "rows" / row / f"seed{s}" / "result.json").read_text()))
                   for s in seeds]
        summary["paired"][row] = paired_difference(results, members)
        print(f"vs {row} ({[round(m.mean_dice, 3) for m in members]}; re-scored here "
              f"{[round(v, 3) for v in summary['members'][row].values()]}): {summary['paired'][row]}", flush=True)
    write_text_atomic(json.dumps(summary, indent=1) + "\n", args.out / "summary.json")


if __name__ == "__main__":
    main()
