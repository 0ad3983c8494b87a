"""Largest-connected-component post-processing: the component kept, what is removed, connectivity across slices,
and `evaluate --largest-component` scoring the cleaned volumes on the same grid."""

from __future__ import annotations

import json

import numpy as np

from mrgen_nnunet.cli.main import main
from mrgen_nnunet.data.io import Geometry, read_image, write_image
from mrgen_nnunet.evaluation.metrics import evaluate_folder
from mrgen_nnunet.evaluation.postprocess import largest_components

GEOMETRY = Geometry((1.25, 1.25, 5.0), (10.0, -4.0, 2.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def _heart() -> np.ndarray:
    """(Z, Y, X) label volume: structure 1 a ring-ish block over 4 slices, structure 2 inside it."""
    seg = np.zeros((6, 32, 32), np.uint8)
    seg[1:5, 8:20, 8:20] = 1
    seg[1:5, 11:17, 11:17] = 2
    return seg


def test_keeps_the_largest_component_of_each_label():
    seg = _heart()
    noisy = seg.copy()
    noisy[2, 26:29, 26:29] = 2  # a false positive of label 2 far from the heart
    noisy[5, 0:2, 0:2] = 1  # and of label 1 in another slice
    cleaned, shares = largest_components(noisy, [1, 2, 3])
    assert np.array_equal(cleaned, seg)
    assert 0.9 < shares[1] < 1.0 and 0.9 < shares[2] < 1.0 and 3 not in shares  # absent labels are skipped


def test_a_structure_spanning_slices_is_one_component():
    seg = np.zeros((3, 10, 10), np.uint8)
    seg[0, 2:5, 2:5] = 1
    seg[1, 3:6, 3:6] = 1  # overlaps slice 0 in-plane: face-connected through the slice axis
    seg[2, 4:7, 4:7] = 1
    cleaned, shares = largest_components(seg, [1])
    assert np.array_equal(cleaned, seg) and shares[1] == 1.0
    flat, _ = largest_components(seg[1], [1])  # 2D slices work too
    assert np.array_equal(flat, seg[1])


def test_evaluate_largest_component_removes_a_false_positive(tmp_path):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    seg = _heart()
    pred = seg.copy()
    pred[2, 24:30, 24:30] = 2  # a blob as large as a fifth of the structure, far away
    write_image(seg, GEOMETRY, gt_dir / "case1.nii.gz")
    write_image(pred, GEOMETRY, pred_dir / "case1.nii.gz")
    labels = {"background": 0, "a": 1, "b": 2}
    raw = evaluate_folder(pred_dir, gt_dir, labels, tmp_path / "raw")
    clean = evaluate_folder(pred_dir, gt_dir, labels, tmp_path / "clean", largest_component=True)
    assert raw["mean"]["b"]["Dice"] < 0.9 and clean["mean"]["b"]["Dice"] == 1.0
    assert clean["mean"]["a"]["Dice"] == raw["mean"]["a"]["Dice"] == 1.0
    written, geometry = read_image(tmp_path / "clean" / "postprocessed" / "case1.nii.gz")
    assert np.array_equal(written, seg) and geometry == read_image(pred_dir / "case1.nii.gz")[1]
    assert np.array_equal(read_image(pred_dir / "case1.nii.gz")[0], pred)  # the predictions are left as they were

    out = tmp_path / "cli"
    assert main(["evaluate", "--pred", str(pred_dir), "--gt", str(gt_dir), "--out", str(out),
                 "--labels", "background=0,a=1,b=2", "--largest-component"]) in (0, None)
    assert json.loads((out / "summary.json").read_text())["mean"]["b"]["Dice"] == 1.0
