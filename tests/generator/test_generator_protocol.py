"""A generator family is added through the registry alone (generator/protocol.py), and synthesis refuses anything
that is not a GeneratorPipeline with a GeneratorConfig."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.generator import protocol
from mrgen_nnunet.generator.folder import CONFIG_FILE, GeneratorConfig
from mrgen_nnunet.generator.protocol import GeneratorPipeline, load_generator, register_family


class ConstantPipeline:
    """A pixel-space 'family' that paints every structure a constant grey: enough to be a GeneratorPipeline."""

    def __init__(self, config: GeneratorConfig):
        self.config = config

    def encode_masks(self, label_maps: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(label_maps.astype(np.float32))[:, None] / max(self.config.labels.values()) * 2 - 1

    def __call__(self, prompt, mask, num_inference_steps=1, guidance_scale=1.0, generator=None, scheduler="ddim",
                 **translate):
        return type("Out", (), {"images": mask[:, :1].clone()})()


@pytest.fixture
def constant_family(tmp_path, monkeypatch):
    monkeypatch.setattr(protocol, "FAMILIES", dict(protocol.FAMILIES))
    register_family("constant", lambda folder, controlnet, device: ConstantPipeline(
        GeneratorConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))))
    folder = tmp_path / "gen"
    folder.mkdir()
    config = GeneratorConfig(resolution=16, labels={"background": 0, "ring": 1}, family="constant")
    (folder / CONFIG_FILE).write_text(json.dumps(config.to_dict()))
    return folder


def test_a_registered_family_loads_from_its_folder(constant_family):
    pipe = load_generator(constant_family, None, "cpu")
    assert isinstance(pipe, GeneratorPipeline) and isinstance(pipe, ConstantPipeline)
    assert pipe.config.resolution == 16 and pipe.config.family == "constant"
    maps = np.zeros((2, 16, 16), np.uint8)
    maps[:, 4:8, 4:8] = 1
    out = pipe(["x", "y"], pipe.encode_masks(maps))
    assert out.images.shape == (2, 1, 16, 16) and float(out.images.max()) == 1.0


def test_unknown_family_and_non_pipelines_are_one_line_errors(constant_family, monkeypatch):
    config = json.loads((constant_family / CONFIG_FILE).read_text())
    (constant_family / CONFIG_FILE).write_text(json.dumps(config | {"family": "pixel"}))
    with pytest.raises(MRGenError, match="unknown generator family 'pixel'") as err:
        load_generator(constant_family, None, "cpu")
    assert "\n" not in str(err.value) and "constant" in str(err.value)
    register_family("pixel", lambda folder, controlnet, device: object())
    with pytest.raises(MRGenError, match="not a generator pipeline"):
        load_generator(constant_family, None, "cpu")
    with pytest.raises(MRGenError, match="generator folder not found"):
        load_generator(constant_family / "missing", None, "cpu")


def test_the_mrgen_family_is_registered_and_is_the_default():
    assert "mrgen" in protocol.FAMILIES and GeneratorConfig(resolution=8, labels={}).family == "mrgen"
