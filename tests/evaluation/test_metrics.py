"""Per-volume Dice/HD95: known geometry, true spacing, outputs, and one-line errors for bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from mrgen_nnunet.cli.main import main
from mrgen_nnunet.data.io import Geometry, write_image
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.evaluation.hd95 import hd95
from mrgen_nnunet.evaluation.metrics import evaluate_folder

LABELS = {"background": 0, "a": 1, "b": 2}


def test_hd95_shift_in_mm_uses_spacing():
    ref = np.zeros((4, 20, 20), bool)
    ref[:, 5:12, 5:12] = True
    pred = np.roll(ref, 2, axis=2)  # 2 voxels along x
    assert hd95(pred, ref, (5.0, 1.0, 1.5)) == pytest.approx(3.0)
    assert hd95(pred, ref, (5.0, 1.0, 0.5)) == pytest.approx(1.0)
    assert hd95(ref, ref, (5.0, 1.0, 1.5)) == 0.0
    assert math.isnan(hd95(np.zeros_like(ref), ref, (1.0, 1.0, 1.0)))


def test_hd95_slice_axis_shift_counts_slice_thickness():
    ref = np.zeros((6, 10, 10), bool)
    ref[1:3, 2:8, 2:8] = True
    pred = np.roll(ref, 1, axis=0)
    assert hd95(pred, ref, (5.0, 1.25, 1.25)) == pytest.approx(5.0)


def _volumes(tmp_path, spacing=(1.25, 1.25, 5.0), pred_spacing=None, n=3, gt_extra=None):
    rng = np.random.default_rng(0)
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    truth = {}
    for k in range(n):
        gt = np.zeros((5, 24, 24), np.uint8)
        y, x = rng.integers(2, 10, size=2)
        gt[1:4, y:y + 8, x:x + 8] = 1
        gt[1:4, y + 2:y + 5, x + 2:x + 5] = 2
        pred = gt.copy()
        pred[2, y:y + 8, x + 8] = 1  # a few extra voxels of label a
        if gt_extra is not None and k == 0:
            gt[0, 0, 0] = gt_extra
        write_image(gt, Geometry.default(3, spacing), gt_dir / f"C{k:03d}.nii.gz")
        write_image(pred, Geometry.default(3, pred_spacing or spacing), pred_dir / f"C{k:03d}.nii.gz")
        truth[f"C{k:03d}"] = (gt, pred)
    return pred_dir, gt_dir, truth


def test_evaluate_folder_dice_matches_definition_and_writes_outputs(tmp_path):
    pred_dir, gt_dir, truth = _volumes(tmp_path)
    result = evaluate_folder(pred_dir, gt_dir, LABELS, tmp_path / "out")
    assert result["n_cases"] == 3
    for case, (gt, pred) in truth.items():
        a_gt, a_pred = gt == 1, pred == 1
        dice = 2 * (a_gt & a_pred).sum() / (a_gt.sum() + a_pred.sum())
        assert result["cases"][case]["a"]["Dice"] == pytest.approx(dice)
        assert result["cases"][case]["b"]["Dice"] == 1.0
        assert result["cases"][case]["b"]["HD95_mm"] == 0.0
        assert result["cases"][case]["a"]["HD95_mm"] > 0
    assert result["mean"]["a"]["Dice"] < 1.0
    assert set(result["mean"]) == {"a", "b"}
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["mean"]["b"]["Dice"] == 1.0
    rows = (out / "metrics.csv").read_text(encoding="utf-8").strip().splitlines()
    assert rows[0].startswith("case,label,Dice") and len(rows) == 1 + 3 * 2
    assert "mean ± sd" in (out / "metrics.md").read_text(encoding="utf-8")
    assert (out / "metrics.png").read_bytes()[:4] == b"\x89PNG"


def test_labels_default_to_dataset_json_beside_predictions(tmp_path):
    pred_dir, gt_dir, _ = _volumes(tmp_path, n=1)
    (pred_dir / "dataset.json").write_text(json.dumps({"labels": LABELS}))
    result = evaluate_folder(pred_dir, gt_dir, None, tmp_path / "out")
    assert set(result["mean"]) == {"a", "b"}


def test_missing_prediction_is_refused(tmp_path):
    pred_dir, gt_dir, _ = _volumes(tmp_path)
    (pred_dir / "C001.nii.gz").unlink()
    with pytest.raises(MRGenError, match="predictions missing for 1 of 3 cases"):
        evaluate_folder(pred_dir, gt_dir, LABELS, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_spacing_mismatch_is_refused(tmp_path):
    pred_dir, gt_dir, _ = _volumes(tmp_path, pred_spacing=(1.25, 1.25, 2.5))
    with pytest.raises(MRGenError, match="spacing mismatch"):
        evaluate_folder(pred_dir, gt_dir, LABELS, tmp_path / "out")


def test_other_label_map_is_refused(tmp_path):
    pred_dir, gt_dir, _ = _volumes(tmp_path, gt_extra=4)
    with pytest.raises(MRGenError, match=r"label values \[4\] outside the label map"):
        evaluate_folder(pred_dir, gt_dir, LABELS, tmp_path / "out")


def test_cli_evaluate_ok_and_one_line_error(tmp_path, capsys):
    pred_dir, gt_dir, _ = _volumes(tmp_path, n=2)
    args = ["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--out", str(tmp_path / "o"),
            "--labels", "background=0,a=1,b=2"]
    assert main(args) == 0
    assert "b: Dice 1.0000" in capsys.readouterr().out
    (pred_dir / "C000.nii.gz").unlink()
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mrgen-nnunet: error: predictions missing")
    assert main(args[:-1] + ["a=x"]) == 1
    assert "cannot parse label" in capsys.readouterr().err
