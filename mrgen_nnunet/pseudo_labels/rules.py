"""Which predicted slices become training labels: confidence and plausibility rules (pure numpy).

Input per slice: nnU-Net's softmax probabilities (K, H, W) (K = classes incl. background, mirror-TTA averaged).
- pixel level: a pixel whose top probability is below `pixel_confidence` gets the `ignore` label (nnU-Net's loss
  skips it) instead of a guess;
- slice level: the mean top probability over the predicted foreground must reach `slice_confidence`, the
  foreground must cover `min_foreground` of the slice, every `required` structure must be present, and each
  structure's largest connected component must hold `min_component_share` of its pixels (a structure scattered
  in pieces is implausible anatomy); smaller components are set to background.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.evaluation.postprocess import largest_components


@dataclass(frozen=True)
class PseudoLabelRules:
    pixel_confidence: float = 0.7
    slice_confidence: float = 0.85
    min_foreground: float = 0.005
    min_component_share: float = 0.8
    required: tuple[int, ...] = ()  # label values that must be present in a kept slice

    def __post_init__(self):
        for name in ("pixel_confidence", "slice_confidence", "min_foreground", "min_component_share"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise MRGenError(f"{name} must be in [0, 1], got {value!r}", f"--{name.replace('_', '-')}",
                                 "give a fraction, e.g. 0.8")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SliceDecision:
    keep: bool
    reason: str  # "kept" or why not
    confidence: float  # mean top probability over the predicted foreground, in [0, 1] (0 without foreground)
    label: np.ndarray | None  # (H, W) uint8 with `ignore_value` where unconfident; None when not kept


def decide_slice(probabilities: np.ndarray, rules: PseudoLabelRules, ignore_value: int) -> SliceDecision:
    """probabilities (K, H, W) softmax of one slice -> the decision and, when kept, the pseudo-label map."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    top = probabilities.max(axis=0)
    seg = probabilities.argmax(axis=0).astype(np.uint8)
    foreground = seg > 0
    confidence = float(top[foreground].mean()) if foreground.any() else 0.0
    if foreground.mean() < rules.min_foreground:
        return SliceDecision(False, "too little foreground", confidence, None)
    if confidence < rules.slice_confidence:
        return SliceDecision(False, "low confidence", confidence, None)
    present = sorted(int(v) for v in np.unique(seg[foreground]))
    missing = [v for v in rules.required if v not in present]
    if missing:
        return SliceDecision(False, f"missing structure(s) {missing}", confidence, None)
    cleaned, shares = largest_components(seg, present)
    fragmented = [v for v, s in shares.items() if s < rules.min_component_share]
    if fragmented:
        return SliceDecision(False, f"fragmented structure(s) {fragmented}", confidence, None)
    cleaned[top < rules.pixel_confidence] = ignore_value
    return SliceDecision(True, "kept", confidence, cleaned)
