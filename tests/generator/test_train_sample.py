"""Each stage trains a few steps of the tiny preset; save -> load -> sample is reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.generator.pipeline import MRGenPipeline


@pytest.fixture
def generator_dir(tiny_generator):
    return tiny_generator


def test_all_stages_leave_a_complete_folder_with_finite_losses(generator_dir):
    for part in ("vae", "unet", "controlnet", "scheduler", "text_encoder"):
        assert (generator_dir / part).is_dir(), part
    assert list((generator_dir / "controlnet").glob("*.safetensors"))
    for stage in ("autoencoder", "text", "mask"):
        rows = (generator_dir / "logs" / f"{stage}_loss.csv").read_text(encoding="utf-8").split()[1:]
        losses = [float(r.split(",")[1]) for r in rows]
        assert len(losses) == 3 and np.isfinite(losses).all(), (stage, losses)
        assert (generator_dir / "validation" / f"{stage}_step3.png").is_file()
        assert (generator_dir / "logs" / f"{stage}_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_save_load_sample_same_seed_same_output(generator_dir):
    pipe = MRGenPipeline.from_pretrained(generator_dir)
    assert pipe.config.resolution == 32 and pipe.config.target_modality == "LGE Cardiac MRI"
    maps = np.zeros((2, 32, 32), np.uint8)
    maps[:, 8:20, 8:20] = 2
    maps[1, 10:14, 10:14] = 1
    mask = pipe.encode_masks(maps)
    assert mask.shape == (2, 1, 32, 32) and mask.min() >= -1 and mask.max() <= 1
    prompt = "LGE Cardiac MRI, LGE attributes, Heart, left ventricle"

    def run(seeds, scheduler="ddim"):
        gens = [torch.Generator().manual_seed(s) for s in seeds]
        return pipe(prompt, mask, num_inference_steps=3, guidance_scale=2.0, generator=gens, scheduler=scheduler)

    a, b = run([1, 2]), MRGenPipeline.from_pretrained(generator_dir)
    b_out = b(prompt, mask, num_inference_steps=3, guidance_scale=2.0,
              generator=[torch.Generator().manual_seed(s) for s in [1, 2]])
    assert a.images.shape == (2, 1, 32, 32) and a.images.dtype == torch.float32
    assert a.images.min() >= -1 and a.images.max() <= 1
    assert torch.equal(a.images, b_out.images)
    assert not torch.equal(a.images[0], a.images[1])
    assert torch.equal(run([3, 2]).latents[1], a.latents[1])  # a sample depends on its own seed
    dpm = run([1, 2], scheduler="dpm")
    assert dpm.images.shape == (2, 1, 32, 32) and torch.isfinite(dpm.images).all()


def test_wrong_controlnet_channels_is_one_line_error(generator_dir, tmp_path):
    import json
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(generator_dir, bad)
    cfg = json.loads((bad / "mrgen_generator.json").read_text(encoding="utf-8"))
    cfg["mask_encoding"] = "onehot"
    (bad / "mrgen_generator.json").write_text(json.dumps(cfg))
    with pytest.raises(MRGenError, match="mask channels"):
        MRGenPipeline.from_pretrained(bad)


def test_corrupt_weights_is_one_line_error(generator_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(generator_dir, bad)
    (bad / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(MRGenError, match="cannot load UNet2DConditionModel"):
        MRGenPipeline.from_pretrained(bad)
