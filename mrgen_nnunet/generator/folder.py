"""The generator folder: `vae/ unet/ controlnet/ scheduler/ text_encoder/ mrgen_generator.json`, and MRGen's
released Hugging Face layout (`vae/ unet/ scheduler/ text_encoder_BiomedCLIP/ tokenizer_BiomedCLIP/
controlnet_model_zoo/controlnet_<Src>_to_<Tgt>/`). Weights load only from safetensors.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.generator.masks import MRGEN_CHAOS_WEIGHTS

CONFIG_FILE = "mrgen_generator.json"
PROMPT_TEMPLATE = "{modality}, {attributes}, {region}, {organs}"


@dataclass
class GeneratorConfig:
    """What a sampler needs besides weights (`mrgen_generator.json`); every generator pipeline's `.config`."""

    resolution: int
    labels: dict[str, int]  # label map name -> value, background 0 included
    mask_encoding: str = "weighted"  # "weighted" (1 channel) | "onehot" (one per organ)
    label_weights: dict[str, float] = field(default_factory=dict)
    prompt_template: str = PROMPT_TEMPLATE
    text_encoder: dict = field(default_factory=dict)  # spec for generator.text.load_text_encoder
    modalities: dict = field(default_factory=dict)  # {key: {"attributes", "region"}} seen in training
    preset: str = ""
    source_modality: str = ""
    target_modality: str = ""
    normalisation: str = "per-slice min-max to [-1, 1], zero-pad to square, resize"
    family: str = "mrgen"  # the loader in generator/protocol.FAMILIES that reads this folder

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def mrgen_default_config() -> GeneratorConfig:
    """Config for MRGen's released weights (CHAOS labels and weights; set `labels` for another controlnet)."""
    labels = {"background": 0, "liver": 1, "right kidney": 2, "left kidney": 3, "spleen": 4}
    return GeneratorConfig(512, labels, "weighted", dict(MRGEN_CHAOS_WEIGHTS), PROMPT_TEMPLATE,
                           {"kind": "mrgen", "max_length": 77}, {}, "mrgen")


def read_config(folder: Path) -> GeneratorConfig:
    path = folder / CONFIG_FILE
    try:
        return GeneratorConfig.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, TypeError, KeyError) as exc:
        raise MRGenError(f"invalid generator config: {exc}", path, "re-train or fix mrgen_generator.json") from None


def is_mrgen_layout(folder: Path) -> bool:
    return (folder / "text_encoder_BiomedCLIP").is_dir() and (folder / "controlnet_model_zoo").is_dir()


def find_mrgen_controlnet(folder: Path, name: str | None) -> Path:
    """`controlnet_model_zoo/<name>` (name like "controlnet_T1_to_T2" or "T1_to_T2"); None: the only one there."""
    zoo = folder / "controlnet_model_zoo"
    found = sorted(p.name for p in zoo.iterdir() if p.is_dir())
    if name is None:
        if len(found) != 1:
            raise MRGenError(f"{len(found)} controlnets in the model zoo", zoo,
                             f"pass controlnet= one of {', '.join(found) or '(none)'}")
        return zoo / found[0]
    for candidate in (zoo / name, zoo / f"controlnet_{name}", Path(name)):
        if candidate.is_dir():
            return candidate
    raise MRGenError(f"controlnet {name!r} not found", zoo, f"choose one of {', '.join(found) or '(none)'}")


def load_model(cls, folder: Path):
    """`cls.from_pretrained(folder, use_safetensors=True)` with one-line errors for missing/corrupt/mismatched files."""
    if not (folder / "config.json").is_file():
        raise MRGenError(f"{cls.__name__} config.json not found", folder, "point at a complete generator folder")
    if not any(folder.glob("*.safetensors")):
        raise MRGenError(f"{cls.__name__} weights (*.safetensors) not found", folder,
                         "train this stage first or convert the weights to safetensors")
    try:
        return cls.from_pretrained(str(folder), use_safetensors=True, low_cpu_mem_usage=False)
    except (OSError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise MRGenError(f"cannot load {cls.__name__}: {first}", folder,
                         "the weights are corrupt or do not match config.json; re-train or re-download") from None


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished temp folder into place (an existing `final` is replaced)."""
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
