"""Frozen text encoders behind one interface: `encoder(prompts) -> (B, L, D)` hidden states.

Kinds (the `spec["kind"]`):
- `tiny`: a small seeded `transformers.BertModel` with open_clip's bundled BPE tokenizer (offline); its weights are
  saved in the generator's `text_encoder/` folder so results are reproducible.
- `mrgen`: MRGen's released `text_encoder_BiomedCLIP/` (+ `tokenizer_BiomedCLIP/`), loaded into a plain
  `BertModel` by key mapping (no `trust_remote_code`); 77 tokens, no attention mask, last hidden state (B, 77, 768).
- `biomedclip`: open_clip's BiomedCLIP (hub id or a local folder); PubMedBERT's last hidden state.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from mrgen_nnunet.errors import MRGenError

SPEC_FILE = "mrgen_text_encoder.json"


class TextEncoder(torch.nn.Module):
    """Tokenise (pad/truncate to `max_length`, no attention mask) and run a BERT: prompts -> (B, L, D) float."""

    def __init__(self, bert, tokenize, spec: dict):
        super().__init__()
        self.bert = bert.eval().requires_grad_(False)
        self._tokenize = tokenize  # list[str] -> LongTensor (B, L)
        self.spec = spec

    @property
    def hidden_size(self) -> int:
        return self.bert.config.hidden_size

    def tokenize(self, prompts: list[str]) -> torch.Tensor:
        """list of B prompts -> (B, max_length) int64 token ids."""
        return self._tokenize(list(prompts))

    @torch.no_grad()
    def forward(self, prompts: list[str]) -> torch.Tensor:
        ids = self.tokenize(prompts).to(self.bert.device)
        return self.bert(input_ids=ids).last_hidden_state


def _bert_tokenizer(folder: Path, max_length: int):
    from transformers import BertTokenizer

    tok = BertTokenizer(str(folder / "vocab.txt"), do_lower_case=True)

    def tokenize(prompts: list[str]) -> torch.Tensor:
        return tok(prompts, padding="max_length", max_length=max_length, truncation=True,
                   return_tensors="pt")["input_ids"]

    return tokenize


def _open_clip_tokenizer(max_length: int):
    from open_clip.tokenizer import SimpleTokenizer

    tok = SimpleTokenizer(context_length=max_length)
    return lambda prompts: tok(prompts)


def tiny_bert_config(spec: dict):
    from transformers import BertConfig

    return BertConfig(vocab_size=49408, hidden_size=spec["hidden_size"], num_hidden_layers=spec["layers"],
                      num_attention_heads=spec["heads"], intermediate_size=2 * spec["hidden_size"],
                      max_position_embeddings=spec["max_length"], pad_token_id=0)


def build_tiny_text_encoder(spec: dict) -> TextEncoder:
    """A fresh tiny encoder, weights drawn from `torch.Generator` seeded with spec["seed"] (same seed, same weights)."""
    from transformers import BertModel

    state = torch.random.get_rng_state()
    torch.manual_seed(spec["seed"])
    bert = BertModel(tiny_bert_config(spec), add_pooling_layer=False)
    torch.random.set_rng_state(state)
    return TextEncoder(bert, _open_clip_tokenizer(spec["max_length"]), spec)


# MRGen text tower (BiomedCLIPTextTransformer, post-norm) -> transformers.BertModel
_MRGEN_KEYS = [
    (r"text_model\.embeddings\.token_embedding\.", "embeddings.word_embeddings."),
    (r"text_model\.embeddings\.position_embedding\.", "embeddings.position_embeddings."),
    (r"text_model\.embeddings\.token_type_embedding\.", "embeddings.token_type_embeddings."),
    (r"text_model\.embeddings\.layer_norm\.", "embeddings.LayerNorm."),
    (r"text_model\.encoder\.layers\.(\d+)\.self_attn\.q_proj\.", r"encoder.layer.\1.attention.self.query."),
    (r"text_model\.encoder\.layers\.(\d+)\.self_attn\.k_proj\.", r"encoder.layer.\1.attention.self.key."),
    (r"text_model\.encoder\.layers\.(\d+)\.self_attn\.v_proj\.", r"encoder.layer.\1.attention.self.value."),
    (r"text_model\.encoder\.layers\.(\d+)\.self_attn\.out_proj\.", r"encoder.layer.\1.attention.output.dense."),
    (r"text_model\.encoder\.layers\.(\d+)\.layer_norm1\.", r"encoder.layer.\1.attention.output.LayerNorm."),
    (r"text_model\.encoder\.layers\.(\d+)\.mlp\.fc1\.", r"encoder.layer.\1.intermediate.dense."),
    (r"text_model\.encoder\.layers\.(\d+)\.mlp\.fc2\.", r"encoder.layer.\1.output.dense."),
    (r"text_model\.encoder\.layers\.(\d+)\.layer_norm2\.", r"encoder.layer.\1.output.LayerNorm."),
]


def map_mrgen_text_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MRGen BiomedCLIP state dict -> BertModel state dict (text tower only; vision/projection keys dropped)."""
    out = {}
    for key, value in state.items():
        for pattern, repl in _MRGEN_KEYS:
            new, n = re.subn("^" + pattern, repl, key)
            if n:
                out[new] = value
                break
    return out


def load_state_dict_file(folder: Path) -> dict[str, torch.Tensor]:
    """Weights of a folder: `*.safetensors` (preferred), else `pytorch_model.bin` with `weights_only=True`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from mrgen_nnunet.weights import load_torch_file

    files = sorted(folder.glob("*.safetensors"))
    try:
        if files:
            state = {}
            for f in files:
                state.update(load_file(str(f)))
            return state
        if (folder / "pytorch_model.bin").is_file():
            return load_torch_file(folder / "pytorch_model.bin")
    except (SafetensorError, RuntimeError, OSError, EOFError) as exc:
        raise MRGenError(f"corrupt weight file: {exc}", folder, "re-download or re-train these weights") from None
    raise MRGenError("no weight file (*.safetensors or pytorch_model.bin)", folder, "point at a complete model folder")


def load_mrgen_text_encoder(encoder_dir: str | Path, tokenizer_dir: str | Path, max_length: int = 77) -> TextEncoder:
    """MRGen's `text_encoder_BiomedCLIP/` + `tokenizer_BiomedCLIP/` -> TextEncoder with a plain BertModel."""
    from transformers import BertConfig, BertModel

    encoder_dir, tokenizer_dir = Path(encoder_dir), Path(tokenizer_dir)
    config_file = encoder_dir / "config.json"
    if not config_file.is_file():
        raise MRGenError("text encoder config.json not found", encoder_dir, "point at MRGen's text_encoder_BiomedCLIP/")
    if not (tokenizer_dir / "vocab.txt").is_file():
        raise MRGenError("tokenizer vocab.txt not found", tokenizer_dir, "point at MRGen's tokenizer_BiomedCLIP/")
    text_cfg = json.loads(config_file.read_text(encoding="utf-8"))["text_config"]
    keep = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
            "hidden_act", "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "pad_token_id")
    bert = BertModel(BertConfig(**{k: text_cfg[k] for k in keep if k in text_cfg}), add_pooling_layer=False)
    state = map_mrgen_text_keys(load_state_dict_file(encoder_dir))
    missing, unexpected = bert.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise MRGenError(f"text encoder weights do not match its config (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})", encoder_dir, "use MRGen's released text_encoder_BiomedCLIP/")
    spec = {"kind": "mrgen", "source": str(encoder_dir), "tokenizer": str(tokenizer_dir), "max_length": max_length}
    return TextEncoder(bert, _bert_tokenizer(tokenizer_dir, max_length), spec)


def open_clip_source(source: str) -> str:
    """An open_clip model name that loads without the network: a folder -> `local-dir:FOLDER`; `hf-hub:ID` -> its
    snapshot in the local Hugging Face cache, else a one-line error at once (no 30 s of network retries)."""
    if source.startswith("hf-hub:"):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source.removeprefix("hf-hub:"), "open_clip_config.json")
        if not isinstance(cached, str):
            raise MRGenError("offline: the model is not in the local Hugging Face cache", source,
                             "provide a local folder: download the model once (huggingface-cli download "
                             f"{source.removeprefix('hf-hub:')} --local-dir DIR) and pass DIR")
        return f"local-dir:{Path(cached).parent}"
    folder = Path(source.removeprefix("local-dir:")).resolve()
    if not (folder / "open_clip_config.json").is_file():
        raise MRGenError("not an open_clip model folder (no open_clip_config.json)", source,
                         "download the model (e.g. microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224) to a "
                         "folder and pass it")
    return f"local-dir:{folder}"


def load_biomedclip_text_encoder(source: str, max_length: int = 77) -> TextEncoder:
    """open_clip BiomedCLIP (`hf-hub:...` id in the local cache, or a local folder with open_clip_config.json) ->
    its PubMedBERT tower."""
    import open_clip

    name = open_clip_source(source)
    try:
        model, _ = open_clip.create_model_from_pretrained(name)
        hf_tok = open_clip.get_tokenizer(name, context_length=max_length)
    except Exception as exc:  # network / missing files: one line for the user
        raise MRGenError(f"cannot load BiomedCLIP: {type(exc).__name__}: {exc}", source,
                         "download the model once (or pass a local copy) — this machine may be offline") from None
    spec = {"kind": "biomedclip", "source": source, "max_length": max_length}
    return TextEncoder(model.text.transformer, lambda prompts: hf_tok(prompts), spec)


def load_text_encoder(spec: dict, folder: str | Path | None = None) -> TextEncoder:
    """Build the encoder a spec describes; `folder` holds saved tiny weights (generator's `text_encoder/`)."""
    kind = spec.get("kind")
    if kind == "tiny":
        from transformers import BertModel

        if folder is None:
            return build_tiny_text_encoder(spec)
        bert = BertModel(tiny_bert_config(spec), add_pooling_layer=False)
        state = load_state_dict_file(Path(folder))
        missing, unexpected = bert.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise MRGenError("tiny text encoder weights do not match its spec", folder, "re-train the generator")
        return TextEncoder(bert, _open_clip_tokenizer(spec["max_length"]), spec)
    if kind == "mrgen":
        return load_mrgen_text_encoder(spec["source"], spec.get("tokenizer") or spec["source"], spec["max_length"])
    if kind == "biomedclip":
        return load_biomedclip_text_encoder(spec["source"], spec["max_length"])
    raise MRGenError(f"unknown text encoder kind {kind!r}", folder or "text encoder spec", "use tiny|mrgen|biomedclip")


def save_text_encoder(encoder: TextEncoder, folder: str | Path) -> None:
    """Write the spec (and, for `tiny`, the weights as safetensors) into `folder`."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SPEC_FILE).write_text(json.dumps(encoder.spec, indent=2, sort_keys=True), encoding="utf-8")
    if encoder.spec["kind"] == "tiny":
        state = {k: v.contiguous() for k, v in encoder.bert.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"))
