"""The nnU-Net filter on labelled 2D slice datasets: how many slices pass MRGen's thresholds?

Run on *real* slices with their true labels it gives the ceiling of the filter's acceptance rate (a generated
candidate can hardly pass more often than a real image of the target sequence does); run on a translated dataset
(`synthesize --filter none`) it gives the candidates' rate through the same code path. Each slice is prepared as
`synthesize` prepares a source mask (min-max to [-1, 1], square pad, resize to --resolution, the same
minimum-foreground skip), scored by `NnUNetFilter` and judged by `filtering.selection.passes`. Labels are used to
score only. Usage:

    python benchmarks/filter_ceiling.py --dataset <nnUNet_raw>/Dataset301_target <nnUNet_raw>/Dataset5xx_translated \
        --model <nnUNet_results>/DatasetNNN_X/<trainer>__<plans>__2d --resolution 128 --out acceptance.json
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import read_image
from mrgen_nnunet.data.nnunet_raw import FILE_ENDING, list_cases, read_dataset_json
from mrgen_nnunet.data.normalize import normalize_label, normalize_slice
from mrgen_nnunet.filtering.nnunet_filter import NnUNetFilter
from mrgen_nnunet.filtering.selection import Thresholds, broken_rules, passes, should_skip


def acceptance(dataset: Path, filt: NnUNetFilter, resolution: int, thresholds: Thresholds = Thresholds()) -> dict:
    """Score every imagesTr/labelsTr slice pair of an nnU-Net raw 2D slice dataset."""
    labels = {k: int(v) for k, v in read_dataset_json(dataset)["labels"].items() if k != "ignore"}
    cases = list_cases(dataset)
    strict = relaxed = skipped = 0
    ious: dict[str, list[float]] = {}
    reasons: Counter = Counter()
    for case in cases:
        image, geometry = read_image(dataset / "imagesTr" / f"{case}_0000{FILE_ENDING}")
        label, _ = read_image(dataset / "labelsTr" / f"{case}{FILE_ENDING}")
        image, label = np.squeeze(image).astype(np.float32), np.squeeze(label).astype(np.uint8)
        if should_skip(label, thresholds):
            skipped += 1
            continue
        x, info = normalize_slice(image, resolution)
        scores = filt.score(x[None], normalize_label(label, info)[None], labels,
                            [info.model_spacing(geometry.spacing[0])])[0]
        strict += passes(scores, thresholds)
        relaxed += passes(scores, thresholds.relaxed(0.1))
        reasons.update(broken_rules(scores, thresholds))
        for name, s in scores.organs.items():
            ious.setdefault(name, []).append(s.iou)
    scored = len(cases) - skipped
    return {"dataset": str(dataset), "model": filt.id, "resolution": resolution, "thresholds": thresholds.to_dict(),
            "slices": len(cases), "skipped_min_foreground": skipped, "scored": scored,
            "passed_mrgen_thresholds": strict, "passed_fraction": round(strict / max(scored, 1), 4),
            "passed_relaxed_0.1": relaxed, "relaxed_fraction": round(relaxed / max(scored, 1), 4),
            "mean_iou": {k: round(float(np.mean(v)), 3) for k, v in sorted(ious.items())},
            "rejections_by_rule": dict(reasons.most_common())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, required=True, nargs="+", help="nnU-Net raw 2D slice dataset folders")
    ap.add_argument("--model", type=Path, required=True, nargs="+")
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    runs = []
    for model in args.model:
        filt = NnUNetFilter.from_folder(model)
        for dataset in args.dataset:
            runs.append(acceptance(dataset, filt, args.resolution))
            print(json.dumps({k: runs[-1][k] for k in ("dataset", "model", "scored", "passed_fraction",
                                                       "relaxed_fraction", "mean_iou")}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
