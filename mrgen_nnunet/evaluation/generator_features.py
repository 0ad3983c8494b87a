"""Feature extractors for the Fréchet distance, as modules torchmetrics' `FrechetInceptionDistance(feature=...)` takes.

Every extractor maps (B, 1, N, N) float32 in [-1, 1] (normalised MR slices) to (B, D) float32 features and has a
`num_features` attribute. Weights are read only with safetensors or `torch.load(weights_only=True)`; without a
weights file the extractor is random-initialised and `random_weights` is True (FID values then only compare runs
made with the same seed, never the literature).

- `inception`: torch-fidelity's Inception-v3 (the network torchmetrics and pytorch-fid use, TF-compatible resize),
  2048-d pool features; weights file `weights-inception-2015-12-05-6726825d.pth` (or a safetensors copy).
- `radimagenet`: torchvision ResNet-50, 2048-d pooled features; a RadImageNet ResNet-50 state dict.
- `biomedclip`: BiomedCLIP's image tower via open_clip (512-d projected embedding); `weights` is a local
  open_clip folder (`open_clip_config.json` + weights) or an `hf-hub:` id.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

from mrgen_nnunet.errors import MRGenError

FEATURES = ("inception", "radimagenet", "biomedclip")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from `.safetensors` or a torch file (weights_only=True); unwraps `state_dict`/`model` keys
    and strips `module.` prefixes."""
    path = Path(path)
    if not path.is_file():
        raise MRGenError("weights file not found", path, "pass an existing --weights file")
    if path.name.endswith(".safetensors"):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise MRGenError(f"cannot read weights: {type(exc).__name__}", path,
                             "use a safetensors file or a plain PyTorch state dict (no pickled objects)") from None
    else:
        from mrgen_nnunet.weights import load_torch_file

        state = load_torch_file(path)
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MRGenError("weights file is not a state dict of tensors", path, "export model.state_dict()")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _to_unit_rgb(x: torch.Tensor) -> torch.Tensor:
    """(B, 1, N, N) in [-1, 1] -> (B, 3, N, N) in [0, 1]."""
    return ((x.float().clamp(-1, 1) + 1) / 2).repeat(1, 3, 1, 1)


def random_inception_state_dict() -> dict[str, torch.Tensor]:
    """Random weights under the FID network's parameter names (torchvision's Inception3 has the same names).

    Convolutions get Kaiming-normal (fan-in, ReLU) init so that, with identity batch-norm statistics, the
    activation scale stays near 1 through the 94 layers (torchvision's std-0.1 init overflows float32 there).
    """
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
    return net.state_dict()


INCEPTION_DIMS = (64, 192, 768, 2048)


class InceptionFeatures(nn.Module):
    """torch-fidelity Inception-v3 (FID network). (B, 1, N, N) in [-1, 1] -> (B, dims) features; `dims` 2048 is
    the standard pool3 FID, 64/192/768 are earlier blocks (pytorch-fid's --dims), cheaper for small sets."""

    def __init__(self, state_dict: dict[str, torch.Tensor] | None = None, dims: int = 2048):
        super().__init__()
        if dims not in INCEPTION_DIMS:
            raise MRGenError(f"Inception feature size {dims} not available", "--dims",
                             f"choose one of {', '.join(map(str, INCEPTION_DIMS))}")
        self.num_features = dims
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        if state_dict is None:
            state_dict = random_inception_state_dict()
        # torch-fidelity reads its weights with a full unpickler: hand it only a file we wrote from plain tensors.
        with tempfile.TemporaryDirectory() as tmp:
            checked = Path(tmp) / "inception.pth"
            torch.save(state_dict, checked)
            try:
                self.net = FeatureExtractorInceptionV3("inception-v3-compat", [str(dims)],
                                                       feature_extractor_weights_path=str(checked))
            except RuntimeError as exc:
                raise MRGenError(f"weights do not fit Inception-v3: {str(exc).splitlines()[0]}", "--weights",
                                 "use the pytorch-fid/torchmetrics file weights-inception-2015-12-05-6726825d.pth") from None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        uint8 = (_to_unit_rgb(x) * 255).round().to(torch.uint8)
        return self.net(uint8)[0]


class ResNet50Features(nn.Module):
    """torchvision ResNet-50 without its classifier. (B, 1, N, N) in [-1, 1] -> (B, 2048) at 224², ImageNet norm."""

    num_features = 2048

    def __init__(self, state_dict: dict[str, torch.Tensor] | None = None):
        super().__init__()
        from torchvision.models import resnet50

        self.net = resnet50(weights=None)
        self.net.fc = nn.Identity()
        if state_dict is not None:
            state = {k.removeprefix("backbone.").removeprefix("encoder."): v for k, v in state_dict.items()}
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            missing, unexpected = self.net.load_state_dict(state, strict=False)
            if missing or unexpected:
                raise MRGenError(f"weights do not fit ResNet-50 ({len(missing)} missing, {len(unexpected)} unexpected, "
                                 f"e.g. {(missing or unexpected)[0]})", "--weights",
                                 "pass a torchvision-layout ResNet-50 state dict (RadImageNet)")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.interpolate(_to_unit_rgb(x), size=(224, 224), mode="bilinear", antialias=True)
        return self.net((x - self.mean) / self.std)


class ClipImageFeatures(nn.Module):
    """An open_clip image tower. (B, 1, N, N) in [-1, 1] -> (B, D) projected embedding (not L2-normalised)."""

    def __init__(self, visual: nn.Module, image_size: int, mean: tuple, std: tuple, num_features: int):
        super().__init__()
        self.visual, self.image_size, self.num_features = visual.eval(), int(image_size), int(num_features)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (self.image_size, self.image_size)
        x = nn.functional.interpolate(_to_unit_rgb(x), size=size, mode="bicubic", antialias=True).clamp(0, 1)
        return self.visual((x - self.mean) / self.std)


def load_biomedclip(weights: str) -> tuple[nn.Module, object]:
    """(open_clip model, tokenizer) from a local open_clip folder or an `hf-hub:` id (cached; no download here)."""
    import open_clip

    from mrgen_nnunet.generator.text import open_clip_source

    name = open_clip_source(weights)
    try:
        model, _ = open_clip.create_model_from_pretrained(name, device="cpu")
        tokenizer = open_clip.get_tokenizer(name)
    except Exception as exc:  # noqa: BLE001 — network/cache/config problems all mean "weights unavailable"
        raise MRGenError(f"cannot load BiomedCLIP: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}", weights,
                         "pass a local open_clip folder with open_clip_config.json and its weights") from None
    return model.eval(), tokenizer


def clip_image_features(model: nn.Module) -> ClipImageFeatures:
    """Wrap an open_clip model's image tower with its own preprocessing constants."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    size = cfg.get("size", getattr(model.visual, "image_size", 224))
    size = size[0] if isinstance(size, (tuple, list)) else size
    dim = model.text_projection.shape[-1] if hasattr(model, "text_projection") and model.text_projection is not None \
        else model.visual(torch.zeros(1, 3, size, size)).shape[-1]
    return ClipImageFeatures(model.visual, size, tuple(cfg.get("mean", OPENAI_DATASET_MEAN)),
                             tuple(cfg.get("std", OPENAI_DATASET_STD)), dim)


def random_biomedclip_image_tower() -> ClipImageFeatures:
    """BiomedCLIP's image tower architecture (timm ViT-B/16 224, linear projection to 512), random-initialised."""
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from open_clip.model import CLIPVisionCfg, _build_vision_tower

    cfg = CLIPVisionCfg(timm_model_name="vit_base_patch16_224", timm_model_pretrained=False, timm_pool="",
                        timm_proj="linear", image_size=224)
    return ClipImageFeatures(_build_vision_tower(512, cfg), 224, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD, 512)


def build_feature_extractor(kind: str, weights: str | Path | None = None, seed: int = 0,
                            dims: int = 2048) -> tuple[nn.Module, bool]:
    """(extractor, random_weights). `kind` in FEATURES; `weights` None -> random init with `seed`;
    `dims` only for inception (64 | 192 | 768 | 2048)."""
    if kind not in FEATURES:
        raise MRGenError(f"unknown feature extractor {kind!r}", "--features", f"choose one of {', '.join(FEATURES)}")
    torch.manual_seed(seed)
    if kind == "biomedclip":
        if weights is None:
            return random_biomedclip_image_tower(), True
        return clip_image_features(load_biomedclip(str(weights))[0]), False
    state = None if weights is None else load_state_dict_file(weights)
    extractor = InceptionFeatures(state, dims) if kind == "inception" else ResNet50Features(state)
    return extractor.eval(), weights is None
