"""A batchgeneratorsv2 transform that redraws each training sample's appearance (augmentation.appearance).

Per sample, with probability `p`, one style is drawn by `weights` (global curve, class-level location-scale, GIN,
label-map resynthesis) and applied to every image channel; the result is rescaled to the patch's own mean and
standard deviation, so nnU-Net's later intensity transforms and the network see the z-scored range they expect.
The segmentation is read (class-level and label-map styles need it) and never changed.

Cases already in the target sequence (synthetic, translated or pseudo-labelled real scans) can get their own
probability `p_target`: the transform only sees a patch, so the training dataset is wrapped in `TrackedDataset`,
which notes the case nnU-Net's data loader loads last (it loads and transforms one sample at a time).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from batchgeneratorsv2.transforms.base.basic_transform import BasicTransform

from mrgen_nnunet.augmentation.appearance import STYLES
from mrgen_nnunet.errors import MRGenError

DEFAULT_WEIGHTS = {"global": 0.3, "class": 0.3, "gin": 0.2, "labelmap": 0.2}


@dataclass
class AppearanceSettings:
    """How often and how the appearance is redrawn. From dataset.json `mrgen.augmentation` (same keys)."""

    p: float = 0.8  # probability that a sample gets a new appearance (else nnU-Net's own augmentation only)
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))  # style -> relative weight
    p_target: float | None = None  # the same for target-sequence cases (synthetic or pseudo-labelled); None = p

    @classmethod
    def from_dict(cls, values: dict | None, where: str = "dataset.json mrgen.augmentation") -> AppearanceSettings:
        values = dict(values or {})
        unknown = sorted(set(values) - {"p", "weights", "p_target"})
        if unknown:
            raise MRGenError(f"unknown augmentation setting(s) {unknown}", where, "use 'p', 'p_target' and 'weights'")
        settings = cls(**values)
        for name in ("p", "p_target"):
            value = getattr(settings, name)
            if value is not None and not 0.0 <= float(value) <= 1.0:
                raise MRGenError(f"augmentation {name} must be in [0, 1], got {value!r}", where,
                                 f"e.g. \"{name}\": 0.8")
        bad = sorted(set(settings.weights) - set(STYLES))
        if bad or not settings.weights or any(float(w) < 0 for w in settings.weights.values()) \
                or sum(map(float, settings.weights.values())) <= 0:
            raise MRGenError(f"bad augmentation weights {settings.weights!r}", where,
                             f"give non-negative weights for some of {sorted(STYLES)}")
        return settings

    def to_dict(self) -> dict:
        return asdict(self)


class CaseTracker:
    """The identifier of the case being loaded, shared by a `TrackedDataset` and an `AppearanceTransform` (one
    object in each data-augmentation worker: forked or pickled together with the data loader that holds both)."""

    key: str | None = None


class TrackedDataset:
    """An nnU-Net dataset (nnUNetBaseDataset) that notes each case it loads in `tracker`; everything else is the
    wrapped dataset's."""

    def __init__(self, dataset, tracker: CaseTracker):
        self.dataset, self.tracker = dataset, tracker

    def load_case(self, identifier: str):
        self.tracker.key = identifier
        return self.dataset.load_case(identifier)

    def __getattr__(self, name: str):
        if name in ("dataset", "tracker") or name.startswith("__"):  # not set yet while unpickling
            raise AttributeError(name)
        return getattr(self.dataset, name)


class AppearanceTransform(BasicTransform):
    """image (C, H, W) float tensor, segmentation (1, H, W) int tensor (-1 = padding) -> same shapes and dtypes.

    Randomness comes from numpy's global generator (seeded per data-augmentation worker by nnU-Net), one fresh
    `np.random.Generator` per sample: `np.random.seed(s)` makes a batch reproducible. With `target_cases` and the
    `tracker` of the training dataset, a sample of one of those cases is redrawn with probability
    `settings.p_target` instead of `settings.p`.
    """

    def __init__(self, settings: AppearanceSettings | None = None, target_cases: frozenset[str] = frozenset(),
                 tracker: CaseTracker | None = None):
        super().__init__()
        self.settings = settings or AppearanceSettings()
        weights = {k: float(v) for k, v in self.settings.weights.items() if float(v) > 0}
        self.styles = sorted(weights)
        self.probabilities = np.array([weights[s] for s in self.styles]) / sum(weights.values())
        self.target_cases, self.tracker = frozenset(target_cases), tracker

    def probability(self) -> float:
        """p for the sample being transformed: p_target for a target-sequence case, else p."""
        if self.settings.p_target is not None and self.tracker is not None and self.tracker.key in self.target_cases:
            return float(self.settings.p_target)
        return float(self.settings.p)

    def get_parameters(self, **data_dict) -> dict:
        rng = np.random.default_rng(np.random.randint(0, 2**31 - 1))
        apply = rng.uniform() < self.probability()
        return {"style": self.styles[rng.choice(len(self.styles), p=self.probabilities)] if apply else None,
                "rng": rng}

    def apply(self, data_dict: dict, **params) -> dict:
        if params["style"] is None or data_dict.get("image") is None:
            return data_dict
        image = data_dict["image"]
        seg = data_dict.get("segmentation")
        label = seg[0].numpy() if seg is not None else np.zeros(image.shape[1:], dtype=np.int16)
        data_dict["image"] = redraw_channels(image, label, params["style"], params["rng"])
        return data_dict


def redraw_channels(image: torch.Tensor, label: np.ndarray, style: str, rng: np.random.Generator) -> torch.Tensor:
    """image (C, H, W) float tensor, label (H, W) int array -> (C, H, W): every channel redrawn by `style` (a
    STYLES name), then given the channel's own mean and standard deviation back (z-scored in, z-scored out)."""
    out = torch.empty_like(image)
    for c in range(image.shape[0]):
        x = image[c].numpy().astype(np.float64)
        y = STYLES[style](x, label, rng).astype(np.float64)
        y = (y - y.mean()) / (y.std() + 1e-8) * x.std() + x.mean()
        out[c] = torch.from_numpy(y).to(image.dtype)
    return out
