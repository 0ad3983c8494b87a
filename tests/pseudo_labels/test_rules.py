"""Pseudo-label rules on constructed probability maps: what is kept, what is dropped, and why."""

import numpy as np
import pytest

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.pseudo_labels.rules import PseudoLabelRules, decide_slice

IGNORE = 3


def _probs(label: np.ndarray, confidence: float, k: int = 3) -> np.ndarray:
    """(k, H, W): `confidence` on the labelled class, the rest spread evenly."""
    p = np.full((k,) + label.shape, (1.0 - confidence) / (k - 1), dtype=np.float32)
    for c in range(k):
        p[c][label == c] = confidence
    return p


def _disc() -> np.ndarray:
    y, x = np.mgrid[:64, :64]
    label = np.zeros((64, 64), dtype=np.uint8)
    label[(y - 32) ** 2 + (x - 32) ** 2 < 15**2] = 1
    label[(y - 32) ** 2 + (x - 32) ** 2 < 8**2] = 2
    return label


def test_confident_plausible_slice_is_kept_with_unconfident_pixels_ignored():
    label = _disc()
    p = _probs(label, 0.95)
    p[:, 0:4, 0:4] = np.array([0.5, 0.3, 0.2])[:, None, None]  # an unsure corner
    d = decide_slice(p, PseudoLabelRules(), IGNORE)
    assert d.keep and d.reason == "kept" and d.confidence == pytest.approx(0.95)
    assert (d.label[0:4, 0:4] == IGNORE).all()
    assert np.array_equal(d.label[4:, 4:], label[4:, 4:])


@pytest.mark.parametrize("case, reason", [
    ("low", "low confidence"), ("empty", "too little foreground"), ("missing", "missing structure"),
    ("fragmented", "fragmented"),
])
def test_implausible_or_unsure_slices_are_dropped(case, reason):
    label = _disc()
    rules = PseudoLabelRules()
    if case == "low":
        p = _probs(label, 0.6)
    elif case == "empty":
        p = _probs(np.zeros_like(label), 0.99)
    elif case == "missing":
        p, rules = _probs(np.where(label == 2, 1, label).astype(np.uint8), 0.95), PseudoLabelRules(required=(1, 2))
    else:
        broken = label.copy()
        broken[:, 30:34] = 0  # the ring cut into halves of equal size
        broken[broken == 2] = 0
        p = _probs(broken, 0.95)
    d = decide_slice(p, rules, IGNORE)
    assert not d.keep and reason in d.reason and d.label is None


def test_small_stray_components_are_removed():
    label = _disc()
    label[2:4, 60:62] = 2  # a 4-pixel stray blob of class 2 (class 2 keeps > 80 % in its main component)
    d = decide_slice(_probs(label, 0.95), PseudoLabelRules(), IGNORE)
    assert d.keep and (d.label[2:4, 60:62] == 0).all()


def test_bad_rule_values_are_one_line_errors():
    with pytest.raises(MRGenError, match="slice_confidence must be in"):
        PseudoLabelRules(slice_confidence=1.5)
