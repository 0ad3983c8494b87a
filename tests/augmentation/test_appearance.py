"""Appearance styles: each changes the image, keeps shape/range, follows its rng, and the labels' geometry."""

import numpy as np
import pytest

from mrgen_nnunet.augmentation.appearance import (
    STYLES,
    class_location_scale,
    ipa_blend,
    smooth_field,
    soft_class_weights,
)
from mrgen_nnunet.demo.phantom import PhantomSpec, render_volume


@pytest.fixture(scope="module")
def phantom_slice():
    image, label = render_volume(PhantomSpec(n_slices=1, size=64), "bSSFP", np.random.default_rng(0))
    return image[0].astype(np.float64), label[0].astype(np.int16)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_style_changes_appearance_reproducibly(style, phantom_slice):
    image, label = phantom_slice
    a = STYLES[style](image, label, np.random.default_rng(3))
    b = STYLES[style](image, label, np.random.default_rng(3))
    c = STYLES[style](image, label, np.random.default_rng(4))
    assert a.shape == image.shape and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0 and np.isfinite(a).all()
    assert np.array_equal(a, b)  # same seed, same image
    assert not np.allclose(a, c)  # another seed, another appearance
    unit = (image - image.min()) / (image.max() - image.min())
    changes = [np.abs(STYLES[style](image, label, np.random.default_rng(s)) - unit).mean() for s in range(5)]
    assert max(changes) > 0.05  # not the input (GIN's mixing ratio can be near 0 in a single draw)


@pytest.mark.parametrize("style", sorted(STYLES))
def test_style_keeps_anatomy_visible(style, phantom_slice):
    """Structures stay distinguishable: over draws, the mean contrast between LV blood (2) and background
    stays measurable (no style returns a flat or label-independent image)."""
    image, label = phantom_slice
    contrasts = []
    for s in range(8):
        out = STYLES[style](image, label, np.random.default_rng(s))
        contrasts.append(abs(out[label == 2].mean() - out[label == 0].mean()))
    assert np.mean(contrasts) > 0.03


def test_class_level_draws_each_structure_independently(phantom_slice):
    image, label = phantom_slice
    diffs = []
    for s in range(12):
        out = class_location_scale(image, label, np.random.default_rng(s), edge_sigma=0.0)
        diffs.append(out[label == 2].mean() - out[label == 1].mean())
    assert min(diffs) < 0 < max(diffs)  # blood brighter than myocardium in some draws, darker in others


def test_soft_weights_sum_to_one_and_treat_padding_as_background():
    label = np.zeros((16, 16), dtype=np.int16)
    label[4:8, 4:8] = 1
    label[:, :2] = -1  # nnU-Net's padding value
    w = soft_class_weights(label, np.array([0, 1]), sigma=1.0)
    assert w.shape == (2, 16, 16) and np.allclose(w.sum(0), 1.0)
    assert w[0, 0, 0] > 0.99 and w[1, 6, 6] > 0.6


def test_smooth_field_spans_unit_range_and_is_smooth():
    for s in range(4):
        m = smooth_field((48, 40), np.random.default_rng(s))
        assert m.shape == (48, 40) and m.min() == 0.0 and m.max() == 1.0
        assert np.abs(np.diff(m, axis=0)).max() < 0.5 and np.abs(np.diff(m, axis=1)).max() < 0.5  # no jumps
    assert not np.array_equal(smooth_field((32, 32), np.random.default_rng(0)),
                              smooth_field((32, 32), np.random.default_rng(1)))


def test_ipa_varies_intensity_within_a_structure():
    """A flat structure stays flat under the per-class style, but the IPA blend of two draws gives it a smooth
    intensity gradient inside (the within-class variation, e.g. an enhanced patch in LGE's myocardium)."""
    image = np.zeros((64, 64))
    image[16:48, 16:48] = 1.0
    label = (image > 0).astype(np.int16)
    inside = label == 1
    inner = np.zeros_like(inside)
    inner[20:44, 20:44] = True  # away from the soft class border
    flat = class_location_scale(image, label, np.random.default_rng(0))
    assert flat[inner].std() < 1e-6
    spreads = [ipa_blend(image, label, np.random.default_rng(s), styles=("class",))[inner].std() for s in range(6)]
    assert max(spreads) > 0.02
