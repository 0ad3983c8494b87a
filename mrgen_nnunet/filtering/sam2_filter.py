"""SAM2 filter: does SAM2, prompted with each organ's mask, segment that organ in the synthetic image?

Each candidate image is encoded ONCE (`SAM2ImagePredictor.set_image_batch`), then every organ present is prompted
(its mask as `mask_input` logits — MRGen's choice —, its bounding box, or both). Of SAM2's three outputs the
best-scoring one is compared with the conditioning mask: IoU, and SAM2's predicted score as confidence.
Unlike MRGen: the image is converted to uint8 without overflow (MRGen multiplied a uint8 image by 255, so SAM2 saw
it inverted), the encoder runs once per image (not once per organ), and the mask prompt is given as logits
(±`MASK_LOGIT`), not 0/255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.filtering.selection import CandidateScores, OrganScore, iou

MASK_LOGIT = 10.0  # logit given to SAM2's mask prompt inside (+) / outside (-) the organ
PROMPTS = ("mask", "box", "box+mask")
SAM2_CONFIGS = {
    "tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}


def to_sam2_rgb(image: np.ndarray) -> np.ndarray:
    """(N, N) float in [-1, 1] -> (N, N, 3) uint8 in [0, 255] (-1 → 0, 1 → 255; no wrap-around)."""
    unit = (np.clip(np.asarray(image, np.float32), -1.0, 1.0) + 1.0) / 2.0
    grey = np.rint(unit * 255.0).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def mask_prompt(organ: np.ndarray) -> np.ndarray:
    """(N, N) bool organ mask -> (1, 256, 256) float32 logits for SAM2's `mask_input` (±MASK_LOGIT)."""
    t = torch.from_numpy(organ.astype(np.float32))[None, None]
    low = F.interpolate(t, size=(256, 256), mode="bilinear", align_corners=False)[0]
    return ((low.numpy() >= 0.5).astype(np.float32) * 2.0 - 1.0) * MASK_LOGIT


def box_prompt(organ: np.ndarray) -> np.ndarray:
    """(N, N) bool organ mask -> (4,) float32 box x0, y0, x1, y1 in pixels (SAM2's XYXY)."""
    ys, xs = np.nonzero(organ)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)


def build_sam2_predictor(config: str = "tiny", checkpoint: str | Path | None = None, device: str = "cpu"):
    """A `SAM2ImagePredictor` from a packaged config (name in SAM2_CONFIGS or a `configs/...yaml` path) and a
    checkpoint (.pt). `checkpoint=None` builds a random-initialised model (tests only)."""
    config_name = SAM2_CONFIGS.get(config, config)
    if config_name not in SAM2_CONFIGS.values():
        raise MRGenError(f"unknown SAM2 config {config!r}", "--sam2-config",
                         f"use one of {', '.join(SAM2_CONFIGS)} or a packaged path such as {SAM2_CONFIGS['tiny']}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise MRGenError("SAM2 checkpoint not found", checkpoint,
                         "download e.g. sam2.1_hiera_tiny.pt from the SAM2 release and pass --sam2-checkpoint")
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    from mrgen_nnunet.weights import load_torch_file

    model = build_sam2(config_name, ckpt_path=None, device=device)
    if checkpoint is not None:  # SAM2 releases: {"model": state dict}
        state = load_torch_file(checkpoint)
        try:
            model.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
        except (RuntimeError, TypeError) as exc:  # state-dict mismatch between config and checkpoint
            first = str(exc).strip().splitlines()[0][:160]
            raise MRGenError(f"SAM2 checkpoint does not fit config {config_name}: {first}", checkpoint,
                             "pass the --sam2-config that matches the checkpoint (tiny/small/base_plus/large)") from None
    return SAM2ImagePredictor(model)


class SAM2Filter:
    """Scores candidates with SAM2. `predictor`: a `SAM2ImagePredictor` (see `build_sam2_predictor`)."""

    name = "sam2"
    checks = True

    def __init__(self, predictor, prompt: str = "mask"):
        if prompt not in PROMPTS:
            raise MRGenError(f"unknown SAM2 prompt {prompt!r}", "--sam2-prompt", f"use one of {', '.join(PROMPTS)}")
        self.predictor = predictor
        self.prompt = prompt

    @property
    def id(self) -> str:
        return f"sam2:{self.prompt}"

    def check_labels(self, labels: dict[str, int]) -> None:
        """SAM2 is prompted with each organ's mask: any label map will do."""

    @torch.no_grad()
    def score(self, images: np.ndarray, label_maps: np.ndarray, labels: dict[str, int],
              pixel_spacing: list[float] | None = None) -> list[CandidateScores]:
        """images (B, N, N) float32 in [-1, 1], label_maps (B, N, N) uint8 -> one CandidateScores per image.

        `prediction` is the union of SAM2's chosen masks, each with its organ's label value.
        `pixel_spacing` is unused (SAM2 works in pixels).
        """
        organs = {name: value for name, value in labels.items() if value != 0}
        self.predictor.set_image_batch([to_sam2_rgb(im) for im in images])  # one encoder pass for the batch
        present = [[(n, label_maps[b] == v) for n, v in organs.items() if (label_maps[b] == v).any()]
                   for b in range(len(images))]
        # SAM2's decoder takes several mask prompts per image only together with points/boxes, so prompt one
        # organ slot at a time (decoder only; the image embedding is reused). Images with fewer organs get an
        # empty prompt in the extra slots, and those outputs are ignored.
        empty = np.zeros(label_maps.shape[1:], bool)
        masks = [[] for _ in present]  # per image: per organ (3, N, N) bool
        scores = [[] for _ in present]  # per image: per organ (3,)
        for j in range(max((len(p) for p in present), default=0)):
            organ_j = [p[j][1] if j < len(p) else empty for p in present]
            m, s, _ = self.predictor.predict_batch(
                box_batch=[box_prompt(o)[None] if o.any() else None for o in organ_j] if "box" in self.prompt else None,
                mask_input_batch=[mask_prompt(o)[None] for o in organ_j] if "mask" in self.prompt else None,
                multimask_output=True)
            for b in range(len(present)):
                if j < len(present[b]):
                    masks[b].append(m[b].reshape(-1, *empty.shape))
                    scores[b].append(s[b].reshape(-1))
        results = []
        for b, organ_list in enumerate(present):
            prediction = np.zeros(label_maps[b].shape, np.uint8)
            organ_scores = {}
            for j, (name, target) in enumerate(organ_list):
                best = int(np.argmax(scores[b][j]))
                chosen = masks[b][j][best] > 0
                organ_scores[name] = OrganScore(iou(chosen, target), float(np.clip(scores[b][j][best], 0.0, 1.0)))
                prediction[chosen & (prediction == 0)] = organs[name]
            results.append(CandidateScores(organ_scores, {}, prediction))
        return results


class PerOrganSAM2:
    """MRGen's way of running the SAM2 filter, for the reference profile: for every candidate and every organ the
    image is encoded again (`set_image`), then the organ is prompted. Same scores as `SAM2Filter` (which encodes
    each image once, batched), at one encoder pass per organ instead of one per image.

    `inner`: a `SAM2Filter`; its predictor, prompt kind, `name` and `id` are used.
    """

    checks = True

    def __init__(self, inner):
        self.inner = inner
        self.predictor = inner.predictor
        self.name, self.id = inner.name, inner.id

    def check_labels(self, labels: dict[str, int]) -> None:
        self.inner.check_labels(labels)

    @torch.no_grad()
    def score(self, images: np.ndarray, label_maps: np.ndarray, labels: dict[str, int],
              pixel_spacing: list[float] | None = None) -> list:
        """images (B, N, N) float32 in [-1, 1], label_maps (B, N, N) uint8 -> one CandidateScores per image."""

        prompt = self.inner.prompt
        results = []
        for image, label_map in zip(images, label_maps, strict=True):
            prediction = np.zeros(label_map.shape, np.uint8)
            organ_scores = {}
            for name, value in labels.items():
                target = label_map == value
                if value == 0 or not target.any():
                    continue
                self.predictor.set_image(to_sam2_rgb(image))  # MRGen: one encoder pass per organ
                masks, scores, _ = self.predictor.predict(
                    box=box_prompt(target) if "box" in prompt else None,
                    mask_input=mask_prompt(target) if "mask" in prompt else None, multimask_output=True)
                best = int(np.argmax(scores))
                chosen = masks[best] > 0
                organ_scores[name] = OrganScore(iou(chosen, target), float(np.clip(scores[best], 0.0, 1.0)))
                prediction[chosen & (prediction == 0)] = value
            results.append(CandidateScores(organ_scores, {}, prediction))
        return results
