"""AppearanceTransform inside nnU-Net's transforms: image redrawn, segmentation untouched, seeded, settings checked."""

import numpy as np
import pytest
import torch

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.trainers.appearance_transform import (
    AppearanceSettings,
    AppearanceTransform,
    CaseTracker,
    TrackedDataset,
)


def _sample():
    rng = np.random.default_rng(0)
    seg = np.zeros((1, 48, 48), dtype=np.int16)
    seg[0, 10:30, 12:34] = 1
    seg[0, 16:24, 18:28] = 2
    seg[0, :, :3] = -1
    image = rng.normal(0, 0.2, (2, 48, 48)) + seg.astype(np.float64) * 0.8
    return {"image": torch.from_numpy(image).float(), "segmentation": torch.from_numpy(seg)}


@pytest.mark.parametrize("style", ["global", "class", "gin", "labelmap"])
def test_each_style_redraws_image_only(style):
    sample = _sample()
    seg_before, image_before = sample["segmentation"].clone(), sample["image"].clone()
    t = AppearanceTransform(AppearanceSettings(p=1.0, weights={style: 1.0}))
    np.random.seed(7)
    out = t(**sample)
    assert torch.equal(out["segmentation"], seg_before)
    assert out["image"].shape == image_before.shape and out["image"].dtype == image_before.dtype
    assert not torch.allclose(out["image"], image_before)
    for c in range(2):  # rescaled to the patch's own statistics
        assert float(out["image"][c].mean()) == pytest.approx(float(image_before[c].mean()), abs=1e-4)
        assert float(out["image"][c].std()) == pytest.approx(float(image_before[c].std()), rel=1e-3)
    np.random.seed(7)
    again = t(**_sample())
    assert torch.equal(again["image"], out["image"])


def test_probability_zero_is_identity_and_weights_pick_styles():
    sample = _sample()
    before = sample["image"].clone()
    assert torch.equal(AppearanceTransform(AppearanceSettings(p=0.0))(**sample)["image"], before)
    t = AppearanceTransform(AppearanceSettings(p=1.0, weights={"gin": 0.0, "class": 1.0}))
    np.random.seed(0)
    assert {t.get_parameters()["style"] for _ in range(20)} == {"class"}


class _Cases:
    """The part of an nnU-Net dataset the loader uses: identifiers and load_case."""

    identifiers = ["src_a", "tgt_b"]

    def load_case(self, identifier):
        return identifier


def test_p_target_applies_to_the_case_the_tracked_dataset_loaded_last():
    """A target-sequence case keeps its appearance (p_target 0) while a source case is redrawn (p 1); the dataset
    wrapper and the transform still share one tracker after pickling (a data-augmentation worker's copy)."""
    import pickle

    tracker = CaseTracker()
    dataset = TrackedDataset(_Cases(), tracker)
    t = AppearanceTransform(AppearanceSettings(p=1.0, p_target=0.0), frozenset({"tgt_b"}), tracker)
    dataset, t = pickle.loads(pickle.dumps((dataset, t)))
    assert dataset.identifiers == ["src_a", "tgt_b"]  # everything else is the wrapped dataset's
    before = _sample()["image"]
    assert dataset.load_case("tgt_b") == "tgt_b" and t.probability() == 0.0
    assert torch.equal(t(**_sample())["image"], before)
    dataset.load_case("src_a")
    assert t.probability() == 1.0 and not torch.allclose(t(**_sample())["image"], before)
    # without p_target every case gets p, tracker or not
    assert AppearanceTransform(AppearanceSettings(p=0.5), frozenset({"tgt_b"}), tracker).probability() == 0.5


@pytest.mark.parametrize("values, match", [({"p": 1.5}, "p must be"), ({"p_target": -0.1}, "p_target must be"),
                                           ({"weights": {"sepia": 1}}, "weights"), ({"weights": {"gin": 0}}, "weights"),
                                           ({"strength": 1}, "unknown")])
def test_bad_settings_are_one_line_errors(values, match):
    with pytest.raises(MRGenError, match=match):
        AppearanceSettings.from_dict(values)
