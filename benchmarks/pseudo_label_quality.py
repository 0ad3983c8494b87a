"""How good are the pseudo-labels a self-training row trained on? (issue 17)

For every pseudo-label dataset a quality benchmark built (`Dataset*_pseudo_*` with a `pseudo_labels.json`), compare
each kept slice with the true label of the same target training slice (the benchmark's `target` dataset, LGE 1-20
of the quality protocol, whose labels only the oracle row trains on). Pixels the pseudo-labeller left as the ignore
label are left out, as nnU-Net leaves them out of the loss. Diagnostic only: no row and no threshold is chosen
from it, and the test volumes (LGE 21-25) are not read.

    .venv/bin/python benchmarks/pseudo_label_quality.py --bench /work/bench/runs/mscmrseg_quality \
        --out benchmarks/results/pseudo_label_quality.json

Per dataset: the kept fraction of slices, the ignored fraction of kept pixels, Dice per structure over all kept
pixels together (global Dice), and the mean Dice of each patient's kept slices (its worst patients listed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import read_image
from mrgen_nnunet.data.nnunet_raw import find_dataset, read_dataset_json


def _dice(inter: np.ndarray, pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pred + truth > 0, 2 * inter / (pred + truth), np.nan)


def pseudo_label_quality(dataset: Path, truth_labels: Path) -> dict:
    """Dice of `dataset`'s kept pseudo-labelled slices against the same slices' files in `truth_labels`."""
    meta = json.loads((dataset / "pseudo_labels.json").read_text())
    labels = {k: v for k, v in read_dataset_json(dataset)["labels"].items() if k not in ("background", "ignore")}
    ignore = meta["ignore_label"]
    names = list(labels)
    counts = np.zeros((3, len(names)))  # intersection, predicted, true pixels per structure
    per_patient: dict[str, np.ndarray] = {}
    ignored = total = 0
    files = sorted((dataset / "labelsTr").glob("*.nii.gz"))
    for f in files:
        pred = read_image(f)[0]
        truth = read_image(truth_labels / f.name)[0]
        valid = pred != ignore
        ignored += int((~valid).sum())
        total += pred.size
        c = np.array([[((pred == v) & (truth == v) & valid).sum(), ((pred == v) & valid).sum(),
                       ((truth == v) & valid).sum()] for v in labels.values()], dtype=float).T
        counts += c
        patient = meta["cases"][f.name[: -len(".nii.gz")]]["patient"]
        per_patient[patient] = per_patient.get(patient, 0) + c
    patient_dice = {p: float(np.nanmean(_dice(*c))) for p, c in per_patient.items()}
    dice = _dice(*counts)
    return {"dataset": dataset.name, "models": meta.get("models", [meta.get("model")]),
            "kept_fraction": meta["kept_fraction"], "kept_slices": len(files),
            "ignored_pixel_fraction": ignored / max(total, 1),
            "dice": dict(zip(names, map(float, dice), strict=True)), "mean_dice": float(np.nanmean(dice)),
            "worst_patients": dict(sorted(patient_dice.items(), key=lambda kv: kv[1])[:4])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", type=Path, required=True, help="out folder of a quality benchmark run")
    parser.add_argument("--target", default="301", help="id or name of the benchmark's labelled target dataset")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    raw = args.bench / "nnUNet_raw"
    truth = find_dataset(raw, int(args.target) if args.target.isdigit() else args.target) / "labelsTr"
    results = [pseudo_label_quality(d, truth) for d in sorted(raw.glob("Dataset*_pseudo_*"))
               if (d / "pseudo_labels.json").exists()]
    for r in results:
        dice = " ".join(f"{k} {v:.3f}" for k, v in r["dice"].items())
        worst = ", ".join(f"{p} {v:.3f}" for p, v in r["worst_patients"].items())
        print(f"{r['dataset']}: kept {r['kept_fraction']:.2f} of slices ({r['kept_slices']}), ignored "
              f"{r['ignored_pixel_fraction']:.3f} of their pixels; Dice {dice}; mean {r['mean_dice']:.3f}; "
              f"worst patients {worst}")
    if args.out:
        args.out.write_text(json.dumps({"bench": str(args.bench), "datasets": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
