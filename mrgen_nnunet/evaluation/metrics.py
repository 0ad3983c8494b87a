"""Per-volume segmentation metrics: Dice (nnU-Net's own `compute_metrics`) and HD95 in mm, per case and mean.

Every ground-truth file `CASE.nii.gz` in `gt_dir` needs a prediction `CASE.nii.gz` in `pred_dir` on the same grid
(shape, spacing, origin). Volumes are compared as they are (3D with their true spacing; 2D slices work too).
Empty reference and prediction give Dice NaN (nnU-Net's convention) and HD95 NaN; means skip NaN.
Outputs in `out_dir`: summary.json, metrics.csv, metrics.md, metrics.png.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import read_image, write_figure, write_text_atomic
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.evaluation.hd95 import hd95

ENDINGS = (".nii.gz", ".nii", ".mha", ".nrrd")


def _case_files(folder: Path) -> dict[str, Path]:
    files = {}
    for f in sorted(folder.iterdir()):
        ending = next((e for e in ENDINGS if f.name.endswith(e)), None)
        if ending and not f.name.startswith("."):
            files[f.name[: -len(ending)]] = f
    return files


def _label_map(labels: dict[str, int] | None, pred_dir: Path, gt_dir: Path) -> dict[str, int]:
    """The label map to use: given, else from dataset.json beside the predictions (nnU-Net writes one) or the
    ground truth's dataset folder."""
    if labels is not None:
        return {str(k): int(v) for k, v in labels.items()}
    for candidate in (pred_dir / "dataset.json", gt_dir.parent / "dataset.json"):
        if candidate.is_file():
            return {k: int(v) for k, v in json.loads(candidate.read_text(encoding="utf-8"))["labels"].items()}
    raise MRGenError("no label map", pred_dir, "pass --labels name=value,... or keep nnU-Net's dataset.json there")


def _check_pair(case: str, gt, pred) -> None:
    (gt_arr, gt_geo), (pred_arr, pred_geo) = gt, pred
    if gt_arr.shape != pred_arr.shape:
        raise MRGenError(f"prediction of {case} has shape {pred_arr.shape}, ground truth {gt_arr.shape}", case,
                         "predict on the test images themselves (nnUNetv2_predict writes them on the input grid)")
    if not np.allclose(gt_geo.spacing, pred_geo.spacing, rtol=1e-3, atol=1e-4):
        raise MRGenError(f"spacing mismatch for {case}: prediction {tuple(round(s, 4) for s in pred_geo.spacing)}"
                         f" vs ground truth {tuple(round(s, 4) for s in gt_geo.spacing)}", case,
                         "predictions must be on the ground truth's grid; do not resample them")
    if not np.allclose(gt_geo.origin, pred_geo.origin, atol=1e-2):
        raise MRGenError(f"origin mismatch for {case}", case, "predictions must be on the ground truth's grid")


def evaluate_folder(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, labels: dict[str, int] | None,
                    out_dir: str | os.PathLike, largest_component: bool = False) -> dict:
    """Dice and HD95 (mm) per foreground label per volume; writes summary.json, metrics.csv, metrics.md, metrics.png.

    labels: {name: value} incl. background (ignored); None = read dataset.json (see `_label_map`).
    largest_component: score the predictions with only the largest connected component of each label (written to
    out_dir/postprocessed; evaluation.postprocess).
    Returns {"labels": {name: value}, "cases": {case: {name: {"Dice", "IoU", "HD95_mm", "n_ref", "n_pred"}}},
    "mean": {name: {"Dice", "Dice_sd", "HD95_mm", "HD95_mm_sd"}}, "foreground_mean": {"Dice", "HD95_mm"},
    "n_cases"}; NaN is written as null.
    """
    from nnunetv2.evaluation.evaluate_predictions import compute_metrics
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
    from rich.progress import track

    pred_dir, gt_dir, out_dir = Path(pred_dir), Path(gt_dir), Path(out_dir)
    for name, folder in (("predictions", pred_dir), ("ground truth", gt_dir)):
        if not folder.is_dir():
            raise MRGenError(f"{name} folder not found", folder, "check the path")
    gt_files, pred_files = _case_files(gt_dir), _case_files(pred_dir)
    if not gt_files:
        raise MRGenError("no label volumes in the ground-truth folder", gt_dir, "point --gt at labelsTs")
    missing = [c for c in gt_files if c not in pred_files]
    if missing:
        raise MRGenError(f"predictions missing for {len(missing)} of {len(gt_files)} cases, e.g. {missing[0]!r}",
                         pred_dir, "predict every test case (nnUNetv2_predict on imagesTs)")
    extra = [c for c in pred_files if c not in gt_files]
    if extra:
        raise MRGenError(f"{len(extra)} prediction(s) have no ground truth, e.g. {extra[0]!r}", pred_dir,
                         "point --gt at the labels of exactly the predicted cases, or remove the extra predictions")
    label_map = _label_map(labels, pred_dir, gt_dir)
    foreground = {name: value for name, value in label_map.items() if value != 0}
    if largest_component:
        from mrgen_nnunet.evaluation.postprocess import postprocess_folder

        pred_dir = postprocess_folder(pred_dir, out_dir / "postprocessed", list(foreground.values()))
        pred_files = _case_files(pred_dir)
    known = set(label_map.values())

    cases: dict[str, dict] = {}
    for case in track(list(gt_files), description="evaluate", transient=True):
        gt, pred = read_image(gt_files[case]), read_image(pred_files[case])
        _check_pair(case, gt, pred)
        for what, arr in (("ground truth", gt[0]), ("prediction", pred[0])):
            extra = sorted(set(np.unique(arr).astype(int).tolist()) - known)
            if extra:
                raise MRGenError(f"{what} of {case} has label values {extra} outside the label map {label_map}",
                                 gt_files[case] if what == "ground truth" else pred_files[case],
                                 "evaluate against test labels with the same label map as the training data")
        nn = compute_metrics(str(gt_files[case]), str(pred_files[case]), SimpleITKIO(), list(foreground.values()))
        spacing = tuple(reversed(gt[1].spacing))  # SimpleITK (x, y, z) -> array order (z, y, x)
        cases[case] = {name: {"Dice": float(nn["metrics"][v]["Dice"]), "IoU": float(nn["metrics"][v]["IoU"]),
                              "HD95_mm": hd95(pred[0] == v, gt[0] == v, spacing),
                              "n_ref": int(nn["metrics"][v]["n_ref"]), "n_pred": int(nn["metrics"][v]["n_pred"])}
                       for name, v in foreground.items()}

    def stats(metric: str, name: str) -> tuple[float, float]:
        values = np.array([cases[c][name][metric] for c in cases], dtype=float)
        values = values[~np.isnan(values)]
        return (float(values.mean()), float(values.std())) if len(values) else (math.nan, math.nan)

    mean = {}
    for name in foreground:
        (d, d_sd), (h, h_sd) = stats("Dice", name), stats("HD95_mm", name)
        mean[name] = {"Dice": d, "Dice_sd": d_sd, "HD95_mm": h, "HD95_mm_sd": h_sd}
    fg = {m: float(np.nanmean([mean[n][m] for n in foreground])) if any(not math.isnan(mean[n][m])
                                                                        for n in foreground) else math.nan
          for m in ("Dice", "HD95_mm")}
    summary = {"labels": label_map, "n_cases": len(cases), "cases": cases, "mean": mean, "foreground_mean": fg}
    write_outputs(summary, out_dir)
    return _nan_to_none(summary)


def _nan_to_none(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    return obj


def _fmt(x: float, digits: int = 4) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"


def write_outputs(summary: dict, out_dir: Path) -> None:
    """summary.json, metrics.csv (case,label,Dice,IoU,HD95_mm,n_ref,n_pred), metrics.md, metrics.png; atomic."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(json.dumps(_nan_to_none(summary), indent=2), out_dir / "summary.json")
    names = list(summary["mean"])
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["case", "label", "Dice", "IoU", "HD95_mm", "n_ref", "n_pred"])
    for case, per_label in summary["cases"].items():
        for name in names:
            m = per_label[name]
            writer.writerow([case, name, _fmt(m["Dice"], 6), _fmt(m["IoU"], 6), _fmt(m["HD95_mm"], 3),
                             m["n_ref"], m["n_pred"]])
    write_text_atomic(buf.getvalue(), out_dir / "metrics.csv")

    lines = ["| case | " + " | ".join(f"{n} Dice | {n} HD95 (mm)" for n in names) + " |",
             "|---|" + "---|---|" * len(names)]
    for case, per_label in summary["cases"].items():
        lines.append(f"| {case} | " + " | ".join(f"{_fmt(per_label[n]['Dice'])} | {_fmt(per_label[n]['HD95_mm'], 2)}"
                                                   for n in names) + " |")
    lines.append("| **mean ± sd** | " + " | ".join(
        f"{_fmt(summary['mean'][n]['Dice'])} ± {_fmt(summary['mean'][n]['Dice_sd'])} | "
        f"{_fmt(summary['mean'][n]['HD95_mm'], 2)} ± {_fmt(summary['mean'][n]['HD95_mm_sd'], 2)}" for n in names) + " |")
    fg = summary["foreground_mean"]
    lines += ["", f"Foreground mean over {summary['n_cases']} volumes: Dice {_fmt(fg['Dice'])}, "
                  f"HD95 {_fmt(fg['HD95_mm'], 2)} mm."]
    write_text_atomic("\n".join(lines) + "\n", out_dir / "metrics.md")
    _plot(summary, out_dir / "metrics.png")


def _plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary["mean"])
    fig, axes = plt.subplots(1, 2, figsize=(3 + 1.2 * len(names), 3.2))
    for ax, metric, unit in ((axes[0], "Dice", ""), (axes[1], "HD95_mm", " (mm)")):
        means = [summary["mean"][n][metric] for n in names]
        sds = [summary["mean"][n][f"{metric}_sd"] for n in names]
        ax.bar(names, [0 if math.isnan(m) else m for m in means], yerr=[0 if math.isnan(s) else s for s in sds],
               color="tab:blue" if metric == "Dice" else "tab:orange", capsize=3)
        ax.set_title(f"{metric.replace('_mm', '')}{unit}, n={summary['n_cases']}")
        if metric == "Dice":
            ax.set_ylim(0, 1)
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    write_figure(fig, path, dpi=100)
