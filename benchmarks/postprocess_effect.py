"""Does keeping the largest connected component of each structure help? Decided on validation, then reported on
the test volumes for every row (issue 17: the best row's Dice).

Decision rule, fixed before any test figure is looked at: largest-component post-processing is adopted if it
raises mean Dice on the *validation* volumes for every `--validation-rows` row (default `source+aug`, whose models
never saw a target image) over all seeds. The validation volumes are the target training patients (LGE 1-20 of the
quality protocol); their labels are read here and nowhere else. The test table (LGE 21-25) is then written for
every finished row of the benchmark, raw and post-processed, whatever the decision was.

    .venv/bin/python benchmarks/postprocess_effect.py --bench runs/mscmrseg_quality \
        --config benchmarks/configs/mscmrseg_quality.toml --out benchmarks/results/postprocess_effect

Volumes, predictions and scores go to --work (default BENCH/postprocess, not the repository); the tables to --out:
validation.{json,md} and test.{json,md}: per row and seed mean Dice raw / post-processed, per row the paired
difference over (volume x seed) with a 95 % bootstrap interval.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from mrgen_nnunet.benchmark.config import load_config
from mrgen_nnunet.benchmark.ledger import Ledger
from mrgen_nnunet.benchmark.plans import plans_name
from mrgen_nnunet.benchmark.report import RowResult, paired_difference
from mrgen_nnunet.benchmark.rows import ROWS, row_trainer
from mrgen_nnunet.benchmark.training import dataset_id_of, result_from_metrics
from mrgen_nnunet.data.nnunet_raw import datasets_with_id, find_dataset, read_dataset_json
from mrgen_nnunet.evaluation.metrics import evaluate_folder
from mrgen_nnunet.trainers.nnunet_run import model_folder, nnunet_environment, predict

VALIDATION_ID = 990  # a dataset id of the benchmark folder's raw root that the benchmark never hands out


def _score(pred: Path, gt: Path, labels: dict, out: Path, row: str, seed: int) -> tuple[RowResult, RowResult]:
    raw = evaluate_folder(pred, gt, labels, out / "raw")
    clean = evaluate_folder(pred, gt, labels, out / "largest_component", largest_component=True)
    return result_from_metrics(row, seed, raw), result_from_metrics(row, seed, clean)


def _table(pairs: dict[str, list[tuple[RowResult, RowResult]]]) -> tuple[list[dict], str]:
    rows, lines = [], ["| row | seeds | mean Dice raw (per seed) | largest component (per seed) | difference "
                       "[95 % CI] (n) |", "|---|---|---|---|---|"]
    for row, items in pairs.items():
        raw, clean = [a for a, _ in items], [b for _, b in items]
        diff = paired_difference(clean, raw)
        rows.append({"row": row, "seeds": [r.seed for r in raw], "raw": [r.mean_dice for r in raw],
                     "largest_component": [r.mean_dice for r in clean], "difference": diff})
        fmt = " / ".join
        lines.append(f"| {row} | {len(raw)} | {np.mean([r.mean_dice for r in raw]):.3f} "
                     f"({fmt(f'{r.mean_dice:.3f}' for r in raw)}) | {np.mean([r.mean_dice for r in clean]):.3f} "
                     f"({fmt(f'{r.mean_dice:.3f}' for r in clean)}) | {diff['mean']:+.3f} "
                     f"[{diff['lo']:+.3f}, {diff['hi']:+.3f}] ({diff['n']}) |")
    return rows, "\n".join(lines) + "\n"


def validation(cfg, bench: Path, rows: list[str], work: Path) -> dict:
    from mrgen_nnunet.dataset_converters import get_converter

    raw_root = bench / "nnUNet_raw"
    ledger = Ledger(bench / "ledger.json", cfg.first_dataset_id, raw_root)
    not_source_only = [r for r in rows if ROWS[r].parts != ("source",)]
    if not_source_only:  # their models are trained on the source alone: the target patients are unseen
        raise SystemExit(f"validation rows must train on the source alone, not {not_source_only}")
    volumes_root = work / f"volumes_{cfg.target.sequence}_{cfg.target.patients}"  # one folder per patient set
    found = datasets_with_id(volumes_root, VALIDATION_ID) if volumes_root.is_dir() else []
    volumes = found[0] if found else get_converter(cfg.target.layout)(  # the target training patients as volumes
        cfg.target.root, volumes_root, VALIDATION_ID, name="validation", sequence=cfg.target.sequence,
        patients=cfg.target.patients, as_slices=False)
    labels = {k: int(v) for k, v in read_dataset_json(volumes)["labels"].items()}
    source = find_dataset(raw_root, ledger.dataset_id("source"))
    pairs: dict[str, list] = {}
    for row in rows:
        for seed in cfg.seeds:
            env = nnunet_environment(raw_root, bench / "nnUNet_preprocessed", bench / "nnUNet_results" / f"seed{seed}")
            pred = work / "validation_predictions" / row / f"seed{seed}"
            trainer, plans = row_trainer(ROWS[row], cfg.trainer), plans_name(cfg.spacing_mm)
            checkpoint = model_folder(env["nnUNet_results"], source.name, trainer, plans) / "fold_0" / \
                "checkpoint_final.pth"
            stamp = {"volumes": str(volumes), "checkpoint": str(checkpoint), "mtime": checkpoint.stat().st_mtime}
            if not (pred / "stamp.json").is_file() or json.loads((pred / "stamp.json").read_text()) != stamp:
                shutil.rmtree(pred, ignore_errors=True)  # predictions of another model or volume set
                predict(dataset_id_of(source), volumes / "imagesTr", pred, trainer, env, fold=0,
                        configuration="2d", device=cfg.device, plans=plans)
                (pred / "stamp.json").write_text(json.dumps(stamp))
            pairs.setdefault(row, []).append(_score(pred, volumes / "labelsTr", labels,
                                                    work / "validation_scores" / row / f"seed{seed}", row, seed))
            print(f"validation {row} seed {seed}: raw {pairs[row][-1][0].mean_dice:.3f}, largest component "
                  f"{pairs[row][-1][1].mean_dice:.3f}", flush=True)
    table, md = _table(pairs)
    adopted = all(t["difference"]["mean"] > 0 for t in table)
    return {"rows": table, "adopted": adopted, "markdown": md, "volumes": str(volumes)}


def test(cfg, bench: Path, work: Path) -> dict:
    raw_root = bench / "nnUNet_raw"
    ledger = Ledger(bench / "ledger.json", cfg.first_dataset_id, raw_root)
    test_set = find_dataset(raw_root, ledger.dataset_id("test"))
    labels = {k: int(v) for k, v in read_dataset_json(test_set)["labels"].items()}
    pairs: dict[str, list] = {}
    for row in cfg.rows:
        for seed in cfg.seeds:
            pred = bench / "rows" / row / f"seed{seed}" / "predictions"
            if (bench / "rows" / row / f"seed{seed}" / "result.json").is_file():
                pairs.setdefault(row, []).append(_score(pred, test_set / "labelsTr", labels,
                                                        work / "test_scores" / row / f"seed{seed}", row, seed))
    table, md = _table(pairs)
    return {"rows": table, "markdown": md}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", type=Path, required=True, help="the benchmark's out folder (ledger.json, rows/)")
    ap.add_argument("--config", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True, help="where the tables go (validation/test .json/.md)")
    ap.add_argument("--work", type=Path, default=None, help="volumes, predictions, scores [default: BENCH/postprocess]")
    ap.add_argument("--validation-rows", default="source+aug")
    ap.add_argument("--stage", choices=("validation", "test", "both"), default="both")
    ap.add_argument("--seeds", default=None, help="comma-separated, instead of the config's (as `benchmark --seeds`)")
    args = ap.parse_args()
    cfg = load_config(args.config)
    if args.seeds:
        cfg.seeds = [int(s) for s in args.seeds.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    work = (args.work or args.bench / "postprocess").resolve()
    stamp = {"date": time.strftime("%Y-%m-%d %H:%M"), "config": str(args.config), "bench": str(args.bench)}
    if args.stage in ("validation", "both"):
        result = validation(cfg, args.bench.resolve(), args.validation_rows.split(","), work)
        (args.out / "validation.json").write_text(json.dumps({**stamp, **result}, indent=1) + "\n")
        (args.out / "validation.md").write_text(
            f"# Validation (target training patients {cfg.target.patients}): largest component "
            f"{'adopted' if result['adopted'] else 'not adopted'}\n\n" + result["markdown"])
        print(result["markdown"], flush=True)
    if args.stage in ("test", "both"):
        result = test(cfg, args.bench.resolve(), work)
        (args.out / "test.json").write_text(json.dumps({**stamp, **result}, indent=1) + "\n")
        (args.out / "test.md").write_text(f"# Test volumes ({cfg.test.patients}), every finished row\n\n"
                                          + result["markdown"])
        print(result["markdown"], flush=True)


if __name__ == "__main__":
    main()
