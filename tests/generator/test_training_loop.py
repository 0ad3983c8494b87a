"""The shared generator training loop: EMA weights, the wall-time budget, resume with EMA, the `cpu` preset,
the choice of the best checkpoint on held-out patients (--keep best)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from mrgen_fixtures import make_index

from mrgen_nnunet.cli.main import main
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.generator.dataset import load_slice_set
from mrgen_nnunet.generator.holdout import holdout_split
from mrgen_nnunet.generator.presets import (
    build_controlnet,
    build_unet,
    build_vae,
    get_preset,
    resolution_multiple,
)
from mrgen_nnunet.generator.train import train_generator
from mrgen_nnunet.generator.training_loop import TrainOptions, latest_checkpoint, run_loop


class Toy(ModelMixin, ConfigMixin):
    """Three weights pulled towards 10 by a quadratic loss: every step moves them the same way."""

    @register_to_config
    def __init__(self, n: int = 3):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(n))


def _loss(model, rng, device):
    return ((model.w - 10.0) ** 2).sum()


def _validate(model):
    return torch.zeros(1, 1, 8, 8)


def _train(out, **opts):
    torch.manual_seed(0)
    options = TrainOptions(**dict(dict(quiet=True, cpu=True), **opts))
    state = {"stage": "text", "preset": "toy", "resolution": 8, "index": "none"}
    return run_loop("text", out, state, 0.5, Toy(), _loss, _validate, options)


def test_ema_weights_are_saved_and_lag_behind_the_trained_ones(tmp_path):
    plain, steps = _train(tmp_path / "a", steps=6, ema_decay=0.0)
    averaged, _ = _train(tmp_path / "b", steps=6, ema_decay=0.9)
    assert steps == 6
    w_plain, w_ema = plain.w.detach(), averaged.w.detach()
    assert torch.all(w_plain > 0)
    assert torch.all(w_ema > 0) and torch.all(w_ema < w_plain)  # between the start (0) and the last weights


def test_resume_restores_the_ema_state(tmp_path):
    whole, _ = _train(tmp_path / "whole", steps=4, ema_decay=0.9)
    _train(tmp_path / "split", steps=3, ema_decay=0.9, checkpoint_every=2)
    ckpt = latest_checkpoint(tmp_path / "split", "text")
    assert ckpt.name == "step_2" and (ckpt / "ema.pt").is_file()
    resumed, steps = _train(tmp_path / "split", steps=4, ema_decay=0.9, resume=True)
    assert steps == 4
    torch.testing.assert_close(resumed.w.detach(), whole.w.detach())


def test_the_time_budget_stops_early_after_at_least_one_step(tmp_path):
    _, steps = _train(tmp_path / "t", steps=10_000, minutes=1e-6, ema_decay=0.0)
    assert 1 <= steps < 10_000
    lines = (tmp_path / "t" / "logs" / "text_loss.csv").read_text(encoding="utf-8").split()
    assert len(lines) == steps + 1
    assert (tmp_path / "t" / "validation" / f"text_step{steps}.png").is_file()


def test_cpu_preset_is_f4_at_128_px():
    p = get_preset("cpu")
    assert p.resolution == 128 and resolution_multiple(p) == 16
    vae, unet = build_vae(p), build_unet(p)
    controlnet = build_controlnet(unet, p, 1)
    x = torch.zeros(1, 1, 128, 128)
    with torch.no_grad():
        z = vae.encode(x).latent_dist.mode()
        assert z.shape == (1, 8, 32, 32)  # f = 4
        cond = torch.zeros(1, 4, 64)
        down, mid = controlnet(z, torch.tensor([1]), encoder_hidden_states=cond, controlnet_cond=x,
                               return_dict=False)
        out = unet(z, torch.tensor([1]), encoder_hidden_states=cond, down_block_additional_residuals=down,
                   mid_block_additional_residual=mid).sample
    assert out.shape == z.shape


def test_bad_minutes_and_ema_decay_are_one_line(synthetic_index, tmp_path, capsys):
    assert main(["train", "autoencoder", "--index", str(synthetic_index), "--out", str(tmp_path / "g"),
                 "--minutes", "-1"]) == 1
    err = capsys.readouterr().err
    assert "--minutes" in err and err.count("\n") == 1
    assert main(["train", "text", "--index", str(synthetic_index), "--out", str(tmp_path / "g"),
                 "--ema-decay", "1.5"]) == 1
    err = capsys.readouterr().err
    assert "--ema-decay" in err and err.count("\n") == 1
    assert not (tmp_path / "g").exists()


def test_the_autoencoder_gets_a_fitted_latent_scale(synthetic_index, tmp_path):
    import json

    import numpy as np
    from diffusers import AutoencoderKL

    from mrgen_nnunet.generator.dataset import load_slice_set
    from mrgen_nnunet.generator.train import train_autoencoder

    vae_dir = train_autoencoder(synthetic_index, tmp_path / "g", "tiny", 32,
                                TrainOptions(steps=2, batch_size=2, quiet=True, cpu=True))
    factor = json.loads((vae_dir / "config.json").read_text(encoding="utf-8"))["scaling_factor"]
    assert factor != 0.18215
    vae = AutoencoderKL.from_pretrained(vae_dir).eval()
    images = load_slice_set(synthetic_index, 32, True).images
    idx = np.linspace(0, len(images) - 1, min(256, len(images))).astype(int)
    torch.manual_seed(0)
    with torch.no_grad():
        z = vae.encode(torch.from_numpy(images[idx]).unsqueeze(1)).latent_dist.sample() * factor
    assert abs(float(z.std()) - 1.0) < 0.1


def test_cpu_preset_trains_and_samples_end_to_end(synthetic_index, tmp_path):
    from mrgen_nnunet.generator.pipeline import MRGenPipeline
    from mrgen_nnunet.generator.train import train_generator

    target = "LGE"
    folder = train_generator(synthetic_index, tmp_path / "g", preset="cpu", target_modality=target, steps=1,
                             resolution=32, options=TrainOptions(batch_size=2, quiet=True, cpu=True))
    pipe = MRGenPipeline.from_pretrained(folder)
    assert pipe.config.preset == "cpu" and pipe.config.resolution == 32
    maps = np.zeros((1, 32, 32), np.uint8)
    maps[0, 10:20, 10:20] = 1
    out = pipe("LGE Cardiac MRI", pipe.encode_masks(maps), num_inference_steps=2,
               generator=[torch.Generator().manual_seed(0)])
    assert out.images.shape == (1, 1, 32, 32) and torch.isfinite(out.images).all()


def _distance_to_3(model):
    return float((model.w.detach() - 3.0).abs().sum())


def test_keep_best_returns_the_checkpoint_with_the_lowest_held_out_score(tmp_path):
    """w walks from 0 towards 10; the score is |w - 3|: the best checkpoint is a middle one, not the last."""
    last, _ = _train(tmp_path / "last", steps=12, ema_decay=0.0)
    options = TrainOptions(quiet=True, cpu=True, steps=12, ema_decay=0.0, checkpoint_every=1, keep="best")
    torch.manual_seed(0)
    state = {"stage": "text", "preset": "toy", "resolution": 8, "index": "none"}
    best, steps = run_loop("text", tmp_path / "best", state, 0.5, Toy(), _loss, _validate, options, _distance_to_3)
    rows = (tmp_path / "best" / "logs" / "text_validation.csv").read_text().split()
    scores = {int(k): float(v) for k, v in (r.split(",") for r in rows[1:])}
    assert steps == 12 and sorted(scores) == list(range(1, 13))
    kept = min(scores, key=scores.get)
    assert 1 < kept < 12 and _distance_to_3(best) == pytest.approx(scores[kept], abs=1e-5)
    assert _distance_to_3(best) < _distance_to_3(last) and float(last.w.detach()[0]) > 3.0


def test_keep_best_needs_checkpoints(tmp_path):
    with pytest.raises(MRGenError, match="needs checkpoints"):
        run_loop("text", tmp_path, {"stage": "text"}, 0.5, Toy(), _loss, _validate,
                 TrainOptions(quiet=True, cpu=True, steps=2, keep="best"), _distance_to_3)


def test_holdout_split_keeps_patients_whole_and_is_seeded(tmp_path):
    data = load_slice_set(make_index(tmp_path / "idx", n=4), 32, quiet=True)
    train, held = holdout_split(data, 0.25, 0, "here")
    assert len(held) == 2 and sorted(np.concatenate([train, held]).tolist()) == list(range(len(data)))
    assert not {data.records[i].patient_id for i in train} & {data.records[i].patient_id for i in held}
    assert np.array_equal(held, holdout_split(data, 0.25, 0, "here")[1])
    with pytest.raises(MRGenError, match="cannot hold out"):
        holdout_split(data, 0.0, 0, "here")


def test_all_stages_keep_their_best_checkpoint_on_held_out_patients(tmp_path, capsys):
    """The real tiny generator with --keep best: each stage scores its checkpoints on held-out patients (the mask
    stage on held-out labelled bSSFP slices) and says which step it kept."""
    index = make_index(tmp_path / "idx", n=4)
    data = load_slice_set(index, 32, quiet=True)
    held = holdout_split(data, 0.5, 0, "here")[1]
    assert any(data.has_label[i] for i in held)  # the mask stage has held-out masks at this seed
    opts = TrainOptions(batch_size=2, seed=0, checkpoint_every=1, keep="best", holdout=0.5)
    train_generator(index, tmp_path / "gen", preset="tiny", target_modality="LGE", steps=3, resolution=32,
                    options=opts)
    out = capsys.readouterr().out
    for stage in ("autoencoder", "text", "mask"):
        rows = (tmp_path / "gen" / "logs" / f"{stage}_validation.csv").read_text().split()
        assert len(rows) == 4 and all(np.isfinite(float(r.split(",")[1])) for r in rows[1:]), stage
        assert f"train {stage}: kept step" in out
    assert (tmp_path / "gen" / "controlnet" / "diffusion_pytorch_model.safetensors").is_file()
