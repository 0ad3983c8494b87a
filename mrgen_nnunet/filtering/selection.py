"""MRGen's candidate-selection rule as pure numpy functions (no model in here).

Per candidate image and per organ of its conditioning mask a filter gives an `OrganScore` (IoU of the filter's
segmentation vs the mask, and a confidence). A candidate passes when every organ has IoU ≥ `iou` and conf ≥ `conf`,
the means are ≥ `mean_iou` / `mean_conf`, and no organ outside the mask was found (`unrequested`, our addition for
the paper's false-negative problem). Per source mask the best `k` passing candidates are kept; when none passes,
every threshold is relaxed by `relax` and at most `relax_keep` is kept. Masks whose foreground fraction is
≤ `min_foreground` are skipped. MRGen's values are the defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np


@dataclass(frozen=True)
class OrganScore:
    """A filter's verdict on one organ of one candidate: IoU in [0, 1], confidence in [0, 1]."""

    iou: float
    conf: float


@dataclass(frozen=True)
class Thresholds:
    """Acceptance thresholds (MRGen defaults)."""

    iou: float = 0.7
    conf: float = 0.8
    mean_iou: float = 0.8
    mean_conf: float = 0.9
    min_foreground: float = 0.005

    def relaxed(self, by: float) -> Thresholds:
        """Every score threshold lowered by `by` (min_foreground unchanged)."""
        return replace(self, iou=self.iou - by, conf=self.conf - by, mean_iou=self.mean_iou - by,
                       mean_conf=self.mean_conf - by)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CandidateScores:
    """Everything a filter says about one candidate.

    organs: organ name -> OrganScore for every organ of the conditioning mask.
    unrequested: organ name -> foreground fraction of organs the filter found that the mask does not contain.
    prediction: (N, N) uint8 label map the filter produced (for the contact sheet), or None.
    """

    organs: dict[str, OrganScore]
    unrequested: dict[str, float] = field(default_factory=dict)
    prediction: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {"organs": {k: {"iou": round(v.iou, 6), "conf": round(v.conf, 6)} for k, v in self.organs.items()},
                "unrequested": {k: round(v, 6) for k, v in self.unrequested.items()}}


@dataclass(frozen=True)
class Selection:
    """Indices (into the candidate list) kept, best first, and whether the relaxed thresholds were used."""

    kept: list[int]
    relaxed: bool


def iou(pred: np.ndarray, target: np.ndarray) -> float:
    """IoU of two boolean (H, W) masks; 1.0 when both are empty."""
    pred, target = np.asarray(pred, bool), np.asarray(target, bool)
    union = np.logical_or(pred, target).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred, target).sum() / union)


def foreground_fraction(label_map: np.ndarray) -> float:
    """Fraction of pixels with a label > 0 in an (H, W) integer label map."""
    label_map = np.asarray(label_map)
    return float((label_map > 0).sum() / label_map.size)


def should_skip(label_map: np.ndarray, thresholds: Thresholds) -> bool:
    """True when the mask's foreground is ≤ `min_foreground` of the image (MRGen skips those)."""
    return foreground_fraction(label_map) <= thresholds.min_foreground


def broken_rules(scores: CandidateScores, thresholds: Thresholds) -> list[str]:
    """The rules a candidate breaks, e.g. ["unrequested right ventricle", "iou myocardium", "mean conf"]."""
    rules = [f"unrequested {name}" for name in scores.unrequested]
    rules += [f"iou {name}" for name, s in scores.organs.items() if s.iou < thresholds.iou]
    rules += [f"conf {name}" for name, s in scores.organs.items() if s.conf < thresholds.conf]
    if scores.organs:
        if np.mean([s.iou for s in scores.organs.values()]) < thresholds.mean_iou:
            rules.append("mean iou")
        if np.mean([s.conf for s in scores.organs.values()]) < thresholds.mean_conf:
            rules.append("mean conf")
    return rules


def passes(scores: CandidateScores, thresholds: Thresholds) -> bool:
    """Per-organ and mean thresholds hold, and no unrequested organ was found. No organ scored → False."""
    return bool(scores.organs) and not broken_rules(scores, thresholds)


def rank_key(scores: CandidateScores) -> tuple[float, float]:
    """Sort key, higher is better: (mean IoU, mean confidence)."""
    if not scores.organs:
        return (-1.0, -1.0)
    return (float(np.mean([s.iou for s in scores.organs.values()])),
            float(np.mean([s.conf for s in scores.organs.values()])))


def select(candidates: list[CandidateScores], thresholds: Thresholds, k: int = 2, relax: float = 0.1,
           relax_keep: int = 1) -> Selection:
    """Keep the best `k` passing candidates; if none passes, the best `relax_keep` passing relaxed thresholds.

    Ties keep the earlier candidate (stable sort), so the result depends only on the scores' order.
    """
    order = sorted(range(len(candidates)), key=lambda i: rank_key(candidates[i]), reverse=True)
    strict = [i for i in order if passes(candidates[i], thresholds)]
    if strict:
        return Selection(strict[:k], relaxed=False)
    loose = thresholds.relaxed(relax)
    return Selection([i for i in order if passes(candidates[i], loose)][:relax_keep], relaxed=True)


def enough(candidates: list[CandidateScores], thresholds: Thresholds, k: int) -> bool:
    """True when at least `k` candidates pass the strict thresholds (generation for this mask can stop)."""
    return sum(passes(c, thresholds) for c in candidates) >= k
