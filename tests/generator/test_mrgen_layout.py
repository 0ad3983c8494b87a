"""MRGen's released layout loads as it is: a folder built here with random-initialised, reduced-size models of the
released classes, the text encoder saved under MRGen's BiomedCLIP key names."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.generator.pipeline import MRGenPipeline
from mrgen_nnunet.generator.presets import (
    MRGEN_SCHEDULER,
    build_controlnet,
    build_unet,
    build_vae,
    get_preset,
)
from mrgen_nnunet.generator.text import load_mrgen_text_encoder

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "t2", "spir", "abdomen", "mri", ",", "liver", "spleen",
         "fat", "low", "signal", "water", "high", "bright"]
TEXT = {"vocab_size": len(WORDS), "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 48, "hidden_act": "gelu", "max_position_embeddings": 80, "type_vocab_size": 2,
        "layer_norm_eps": 1e-12, "pad_token_id": 0, "model_type": "bert"}


def _mrgen_text_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the key names of MRGen's modeling_biomed_clip.py (text tower + some others)."""
    g = torch.Generator().manual_seed(seed)
    h, f = TEXT["hidden_size"], TEXT["intermediate_size"]

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    s = {"text_model.embeddings.token_embedding.weight": r(TEXT["vocab_size"], h),
         "text_model.embeddings.position_embedding.weight": r(TEXT["max_position_embeddings"], h),
         "text_model.embeddings.token_type_embedding.weight": r(2, h),
         "text_model.embeddings.layer_norm.weight": 1 + r(h), "text_model.embeddings.layer_norm.bias": r(h),
         "text_projection.fc1.weight": r(f, h), "text_projection.fc2.weight": r(16, f),
         "vision_model.post_layernorm.weight": r(8), "logit_scale": torch.tensor(4.4454)}
    for i in range(TEXT["num_hidden_layers"]):
        p = f"text_model.encoder.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s[p + f"self_attn.{name}.weight"], s[p + f"self_attn.{name}.bias"] = r(h, h), r(h)
        s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"] = r(f, h), r(f)
        s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"] = r(h, f), r(h)
        for ln in ("layer_norm1", "layer_norm2"):
            s[p + f"{ln}.weight"], s[p + f"{ln}.bias"] = 1 + r(h), r(h)
    return s


def _reference_forward(s: dict[str, torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    """MRGen's BiomedCLIPTextTransformer (post-norm, no attention mask) written out with plain torch ops."""
    F = torch.nn.functional
    h, heads, eps = TEXT["hidden_size"], TEXT["num_attention_heads"], TEXT["layer_norm_eps"]
    e = "text_model.embeddings."
    x = (s[e + "token_embedding.weight"][ids] + s[e + "token_type_embedding.weight"][0]
         + s[e + "position_embedding.weight"][: ids.shape[1]])
    x = F.layer_norm(x, (h,), s[e + "layer_norm.weight"], s[e + "layer_norm.bias"], eps)
    for i in range(TEXT["num_hidden_layers"]):
        p = f"text_model.encoder.layers.{i}."

        def lin(name, v, p=p):
            return v @ s[p + name + ".weight"].T + s[p + name + ".bias"]

        def split(v):
            return v.view(v.shape[0], v.shape[1], heads, h // heads).transpose(1, 2)

        q, k, v = split(lin("self_attn.q_proj", x)), split(lin("self_attn.k_proj", x)), split(lin("self_attn.v_proj", x))
        att = torch.softmax(q @ k.transpose(-1, -2) / (h // heads) ** 0.5, -1) @ v
        att = att.transpose(1, 2).reshape(x.shape)
        x = F.layer_norm(x + lin("self_attn.out_proj", att), (h,), s[p + "layer_norm1.weight"], s[p + "layer_norm1.bias"], eps)
        x = F.layer_norm(x + lin("mlp.fc2", F.gelu(lin("mlp.fc1", x))), (h,), s[p + "layer_norm2.weight"],
                         s[p + "layer_norm2.bias"], eps)
    return x


def _save(model, folder):
    model.save_pretrained(str(folder), safe_serialization=True)


@pytest.fixture(scope="module")
def mrgen_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("mrgen_release")
    enc, tok = root / "text_encoder_BiomedCLIP", root / "tokenizer_BiomedCLIP"
    enc.mkdir(), tok.mkdir()
    (enc / "config.json").write_text(json.dumps({"architectures": ["BiomedCLIPModel"], "model_type": "clip",
                                                  "text_config": TEXT, "projection_dim": 16}))
    save_file(_mrgen_text_state(), str(enc / "model.safetensors"))
    (tok / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    preset = get_preset("tiny", 32)
    preset.unet["cross_attention_dim"] = TEXT["hidden_size"]
    torch.manual_seed(0)
    vae, unet = build_vae(preset), build_unet(preset)
    _save(vae, root / "vae")
    _save(unet, root / "unet")
    (root / "scheduler").mkdir()
    (root / "scheduler" / "scheduler_config.json").write_text(json.dumps(dict(MRGEN_SCHEDULER, _class_name="PNDMScheduler")))
    _save(build_controlnet(unet, preset, 1), root / "controlnet_model_zoo" / "controlnet_T1_to_T2")
    return root


def test_key_mapped_bert_matches_mrgen_text_tower(mrgen_folder):
    text = load_mrgen_text_encoder(mrgen_folder / "text_encoder_BiomedCLIP", mrgen_folder / "tokenizer_BiomedCLIP")
    prompts = ["T2 SPIR Abdomen MRI, fat low signal, liver", ""]
    ids = text.tokenize(prompts)
    assert ids.shape == (2, 77) and ids[0, 0] == WORDS.index("[CLS]") and ids[1, 1] == WORDS.index("[SEP]")
    hidden = text(prompts)
    assert hidden.shape == (2, 77, TEXT["hidden_size"])
    expected = _reference_forward(_mrgen_text_state(), ids)
    torch.testing.assert_close(hidden, expected, atol=1e-5, rtol=1e-4)


def test_pipeline_loads_mrgen_layout_and_samples(mrgen_folder):
    pipe = MRGenPipeline.from_pretrained(mrgen_folder)
    assert pipe.config.resolution == 32 and pipe.config.labels["spleen"] == 4
    maps = np.zeros((1, 32, 32), np.uint8)
    maps[0, 4:12, 4:12] = 1  # liver, weight .3 -> -0.4
    mask = pipe.encode_masks(maps)
    assert mask[0, 0, 5, 5].item() == pytest.approx(-0.4) and mask[0, 0, 20, 20].item() == -1
    out = pipe("T2 SPIR Abdomen MRI, liver", mask, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    assert out.images.shape == (1, 1, 32, 32) and torch.isfinite(out.images).all()


def test_mrgen_layout_errors(mrgen_folder, tmp_path):
    import shutil

    with pytest.raises(MRGenError, match="controlnet 'CT_to_MR' not found"):
        MRGenPipeline.from_pretrained(mrgen_folder, controlnet="CT_to_MR")
    bad = tmp_path / "bad"
    shutil.copytree(mrgen_folder, bad)
    state = _mrgen_text_state()
    del state["text_model.encoder.layers.1.mlp.fc2.weight"]
    save_file(state, str(bad / "text_encoder_BiomedCLIP" / "model.safetensors"))
    with pytest.raises(MRGenError, match="text encoder weights do not match"):
        MRGenPipeline.from_pretrained(bad)
    (bad / "text_encoder_BiomedCLIP" / "model.safetensors").unlink()
    with pytest.raises(MRGenError, match="no weight file"):
        MRGenPipeline.from_pretrained(bad)
