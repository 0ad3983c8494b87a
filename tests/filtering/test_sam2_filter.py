"""SAM2 filter wiring with a real, random-initialised sam2.1_hiera_t (no weights can be downloaded)."""

import numpy as np
import pytest

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.filtering.sam2_filter import SAM2Filter, build_sam2_predictor, mask_prompt, to_sam2_rgb

LABELS = {"background": 0, "myo": 1, "lv": 2, "rv": 3}


@pytest.fixture(scope="module")
def predictor():
    return build_sam2_predictor("tiny", None, device="cpu")


def test_uint8_conversion_is_not_inverted():
    x = np.array([[-1.0, 0.0, 1.0, 2.0]], np.float32)
    rgb = to_sam2_rgb(x)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 4, 3)
    assert rgb[0, :, 0].tolist() == [0, 128, 255, 255]  # monotone: bright stays bright, clipped, no wrap-around


def test_mask_prompt_is_logits():
    m = np.zeros((64, 64), bool)
    m[:32] = True
    logits = mask_prompt(m)
    assert logits.shape == (1, 256, 256)
    assert set(np.unique(logits).tolist()) == {-10.0, 10.0}
    assert logits[0, 0, 0] == 10.0 and logits[0, -1, 0] == -10.0


def test_sam2_scores_shapes_one_encode_per_image_not_inverted(predictor):
    calls = []
    original = predictor.model.forward_image

    def counting_forward_image(img_batch):
        calls.append(img_batch.detach().clone())
        return original(img_batch)

    predictor.model.forward_image = counting_forward_image
    try:
        images = -np.ones((2, 64, 64), np.float32)
        images[:, :, 32:] = 1.0  # right half white
        maps = np.zeros((2, 64, 64), np.uint8)
        maps[0, 10:30, 10:30] = 1
        maps[0, 40:50, 40:60] = 2
        maps[0, 5:15, 40:60] = 3
        maps[1, 20:40, 20:40] = 2
        out = SAM2Filter(predictor, prompt="mask").score(images, maps, LABELS)
    finally:
        predictor.model.forward_image = original

    assert len(calls) == 1 and calls[0].shape == (2, 3, 1024, 1024)  # ONE encoder pass for both images
    x = calls[0][0, 0].numpy()
    # SAM2 normalises with ImageNet mean/std: white -> (1-0.485)/0.229, black -> -0.485/0.229 (no inversion)
    assert x[:, 600:].mean() == pytest.approx((1 - 0.485) / 0.229, abs=1e-3)
    assert x[:, :400].mean() == pytest.approx(-0.485 / 0.229, abs=1e-3)

    assert len(out) == 2
    assert set(out[0].organs) == {"myo", "lv", "rv"} and set(out[1].organs) == {"lv"}
    for c in out:
        assert c.prediction.shape == (64, 64) and c.prediction.dtype == np.uint8
        assert set(np.unique(c.prediction)) <= {0, 1, 2, 3}
        for s in c.organs.values():
            assert 0.0 <= s.iou <= 1.0 and 0.0 <= s.conf <= 1.0
        assert c.unrequested == {}


def test_bad_config_and_missing_checkpoint(tmp_path):
    with pytest.raises(MRGenError, match="unknown SAM2 config"):
        build_sam2_predictor("huge")
    with pytest.raises(MRGenError, match="checkpoint not found"):
        build_sam2_predictor("tiny", tmp_path / "nope.pt")
    bad = tmp_path / "wrong.pt"
    import torch

    torch.save({"model": {"not_a_sam2_key": torch.zeros(1)}}, bad)
    with pytest.raises(MRGenError, match="does not fit"):
        build_sam2_predictor("tiny", bad)
