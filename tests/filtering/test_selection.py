"""The pure selection rules on hand-made masks and scores."""

import numpy as np
import pytest

from mrgen_nnunet.filtering.selection import (
    CandidateScores,
    OrganScore,
    Thresholds,
    enough,
    foreground_fraction,
    iou,
    passes,
    select,
    should_skip,
)

T = Thresholds()


def cand(*pairs, unrequested=None):
    return CandidateScores({f"o{i}": OrganScore(a, b) for i, (a, b) in enumerate(pairs)}, unrequested or {})


def test_iou_on_hand_made_masks():
    a = np.zeros((4, 4), bool)
    b = np.zeros((4, 4), bool)
    a[:2, :2] = True  # 4 px
    b[:2, :3] = True  # 6 px, 4 shared
    assert iou(a, b) == pytest.approx(4 / 6)
    assert iou(a, a) == 1.0
    assert iou(a, ~a) == 0.0
    assert iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0


def test_foreground_and_skip():
    m = np.zeros((100, 100), np.uint8)
    m[:5, :10] = 2  # 50 px = 0.5 %
    assert foreground_fraction(m) == pytest.approx(0.005)
    assert should_skip(m, T)  # ≤ 0.5 % is skipped
    m[5, 0] = 1
    assert not should_skip(m, T)
    assert should_skip(np.zeros((8, 8), np.uint8), T)


def test_per_organ_thresholds():
    assert passes(cand((0.9, 0.95), (0.85, 0.92)), T)
    assert not passes(cand((0.95, 0.99), (0.69, 0.99)), T)  # one organ IoU < 0.7
    assert not passes(cand((0.95, 0.99), (0.9, 0.79)), T)  # one organ conf < 0.8


def test_mean_thresholds():
    # every organ above the per-organ bars, but mean IoU 0.75 < 0.8
    assert not passes(cand((0.75, 0.95), (0.75, 0.95)), T)
    # mean conf 0.85 < 0.9
    assert not passes(cand((0.9, 0.85), (0.9, 0.85)), T)
    assert passes(cand((0.8, 0.9)), T)  # exactly on the bars passes


def test_unrequested_organ_and_empty_rejected():
    assert not passes(cand((0.99, 0.99), unrequested={"right kidney": 0.02}), T)
    assert not passes(CandidateScores({}), T)


def test_select_best_k_in_rank_order():
    cs = [cand((0.85, 0.95)), cand((0.5, 0.99)), cand((0.95, 0.95)), cand((0.9, 0.95)), cand((0.9, 0.91))]
    sel = select(cs, T, k=2)
    assert sel.kept == [2, 3]  # best mean IoU first; ties broken by conf
    assert not sel.relaxed
    assert select(cs, T, k=10).kept == [2, 3, 4, 0]


def test_relax_by_point_one_keeps_one():
    # none passes strictly; two pass at iou .6 / conf .7 / mean .7 / .8
    cs = [cand((0.72, 0.85)), cand((0.65, 0.82)), cand((0.5, 0.99)), cand((0.75, 0.88))]
    assert not any(passes(c, T) for c in cs)
    sel = select(cs, T, k=2, relax=0.1, relax_keep=1)
    assert sel.relaxed
    assert sel.kept == [3]
    assert select([cand((0.3, 0.3))], T).kept == []  # nothing passes even relaxed


def test_relaxed_thresholds_and_enough():
    r = T.relaxed(0.1)
    assert (r.iou, r.conf, r.mean_iou, r.mean_conf) == pytest.approx((0.6, 0.7, 0.7, 0.8))
    assert r.min_foreground == T.min_foreground
    cs = [cand((0.9, 0.95)), cand((0.1, 0.1)), cand((0.95, 0.95))]
    assert enough(cs, T, 2)
    assert not enough(cs[:2], T, 2)
