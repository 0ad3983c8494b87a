"""`mrgen` preset = MRGen's released configs; mask encodings; --resume and its errors; one-hot stage 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from mrgen_fixtures import LABELS

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.generator.masks import encode_masks
from mrgen_nnunet.generator.presets import (
    MRGEN_CONTROLNET,
    MRGEN_SCHEDULER,
    MRGEN_UNET,
    MRGEN_VAE,
    build_controlnet,
    build_unet,
    build_vae,
    get_preset,
)
from mrgen_nnunet.generator.train import TrainOptions, train_autoencoder, train_mask

REF = Path(__file__).resolve().parents[3] / "shared" / "mrgen_reference" / "ckpt_configs"


def _ref(name: str) -> dict:
    if not REF.is_dir():
        pytest.skip(f"{REF} is absent (MRGen reference configs live only on the project's machines)")
    d = json.loads((REF / name).read_text(encoding="utf-8"))
    return {k: v for k, v in d.items() if not k.startswith("_")}


def test_mrgen_preset_equals_released_configs():
    assert MRGEN_VAE == _ref("vae.config.json")
    assert MRGEN_UNET == _ref("unet.config.json")
    assert MRGEN_SCHEDULER == _ref("scheduler_config.json")
    ctrl = _ref("controlnet.config.json")
    assert {k: ctrl[k] for k in MRGEN_CONTROLNET} == MRGEN_CONTROLNET
    shared = set(ctrl) & set(MRGEN_UNET)  # what ControlNetModel.from_unet copies from the UNet
    assert {k: ctrl[k] for k in shared} == {k: MRGEN_UNET[k] for k in shared}
    p = get_preset("mrgen")
    assert p.resolution == 512 and p.text_encoder["max_length"] == 77


@pytest.mark.slow
def test_mrgen_preset_instantiates_at_full_size():
    p = get_preset("mrgen")
    unet = build_unet(p)
    for key, value in _ref("unet.config.json").items():
        assert unet.config[key] == (tuple(value) if isinstance(value, list) else value) or unet.config[key] == value, key
    ctrl = build_controlnet(unet, p, 1)
    for key, value in _ref("controlnet.config.json").items():
        got = ctrl.config[key]
        assert list(got) == value if isinstance(value, list) else got == value, key
    assert build_vae(p).config.latent_channels == 16


def test_weighted_and_onehot_masks():
    labels = {"background": 0, "liver": 1, "right kidney": 2, "left kidney": 3, "spleen": 4}
    maps = np.array([[[0, 1, 2], [3, 4, 0]]], np.uint8)
    w = encode_masks(maps, labels, "weighted")
    np.testing.assert_allclose(w[0, 0].numpy(), [[-1, -0.4, 0.0], [-0.2, 0.2, -1]], atol=1e-6)
    o = encode_masks(maps, labels, "onehot")
    assert o.shape == (1, 4, 2, 3) and o[0, 3, 1, 1] == 1 and o[0, 3, 0, 1] == -1
    cardiac = {"background": 0, "myocardium": 1, "left ventricle": 2, "right ventricle": 3}
    c = encode_masks(np.array([[[1, 2, 3]]], np.uint8), cardiac, "weighted")
    np.testing.assert_allclose(c[0, 0, 0].numpy(), [-0.5, 0.0, 0.5], atol=1e-6)  # evenly spread .25 .5 .75
    assert (encode_masks(np.zeros((1, 4, 4), np.uint8), cardiac, "weighted") == -1).all()


def test_resume_continues_and_refuses_unrelated_run(synthetic_index, tmp_path):
    out = tmp_path / "g"
    opts = dict(batch_size=2, quiet=True, checkpoint_every=1)
    train_autoencoder(synthetic_index, out, "tiny", 32, TrainOptions(steps=2, **opts))
    assert (out / "checkpoints" / "autoencoder" / "step_1" / "optimizer.pt").is_file()
    train_autoencoder(synthetic_index, out, "tiny", 32, TrainOptions(steps=3, resume=True, **opts))
    rows = (out / "logs" / "autoencoder_loss.csv").read_text(encoding="utf-8").split()[1:]
    assert [int(r.split(",")[0]) for r in rows] == [1, 2, 3]
    state = out / "checkpoints" / "autoencoder" / "step_2" / "state.json"
    state.write_text(json.dumps(dict(json.loads(state.read_text(encoding="utf-8")), stage="text")))
    with pytest.raises(MRGenError, match="unrelated run"):
        train_autoencoder(synthetic_index, out, "tiny", 32, TrainOptions(steps=4, resume=True, **opts))
    with pytest.raises(MRGenError, match="preset 'tiny' at 32 px, not 'tiny' at 64 px"):
        train_autoencoder(synthetic_index, out, "tiny", 64, TrainOptions(steps=1, **opts))


def test_onehot_stage_two_and_all_target_mix(tiny_generator, synthetic_index, tmp_path):
    from mrgen_nnunet.generator.pipeline import MRGenPipeline

    gen = tmp_path / "gen"
    shutil.copytree(tiny_generator, gen)
    train_mask(synthetic_index, gen, "LGE Cardiac MRI", "tiny", 32,
               TrainOptions(steps=2, batch_size=2, quiet=True, mask_encoding="onehot", target_mix=1.0))
    pipe = MRGenPipeline.from_pretrained(gen)
    assert pipe.controlnet.config.conditioning_channels == len(LABELS) - 1 and pipe.config.mask_encoding == "onehot"
    mask = pipe.encode_masks(np.zeros((1, 32, 32), np.uint8))
    out = pipe("LGE Cardiac MRI", mask, num_inference_steps=2, generator=[torch.Generator().manual_seed(0)])
    assert out.images.shape == (1, 1, 32, 32)
    with pytest.raises(MRGenError, match="no slices of modality"):
        train_mask(synthetic_index, gen, "T2-SPIR", "tiny", 32, TrainOptions(steps=1, quiet=True))
