"""nnUNetTrainerMRGenAug: nnUNetTrainerMRGen plus an on-the-fly appearance redraw of every training sample.

One hook: `get_training_transforms` takes nnU-Net's own training transforms and inserts `AppearanceTransform`
right after the spatial transform (so it sees the final patch and its segmentation, before nnU-Net's noise, blur,
brightness, contrast, low-resolution and gamma transforms). Validation transforms are nnU-Net's: validation and
the test set see real appearance only. Everything of nnUNetTrainerMRGen (real-only validation, real:synthetic
sampling) applies unchanged, and a plain nnU-Net dataset (no `mrgen` key) trains with the default settings.

Settings: `mrgen.augmentation` in dataset.json, e.g. `{"p": 0.8, "weights": {"global": 0.3, "class": 0.3,
"gin": 0.2, "labelmap": 0.2}}` (appearance_transform.AppearanceSettings), over the class's `appearance_defaults`.
Named variants change only the defaults: `nnUNetTrainerMRGenAugSLA` draws SLAug's two styles (global and
class-level location-scale) only; `nnUNetTrainerMRGenAugIPA` adds GIN+IPA-style blends of two styles.
`nnUNetTrainerMRGenAugCons` adds a second hook, `train_step`: GIN+IPA's consistency term between two appearances
of the same patch. `nnUNetTrainerMRGenAugKeep` redraws the source cases only: the cases already in the target
sequence (`synthetic_cases` and `pseudo_cases` of the `mrgen` key: generated, translated or pseudo-labelled real
scans) keep their appearance (`p_target` 0; the training dataset is wrapped to tell the transform which case it
sees). 2d configurations only (the tool is 2D).
"""

from __future__ import annotations

import numpy as np
import torch
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.pseudo2d import Convert2DTo3DTransform

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.trainers.appearance_transform import (
    AppearanceSettings,
    AppearanceTransform,
    CaseTracker,
    TrackedDataset,
    redraw_channels,
)
from mrgen_nnunet.trainers.mrgen_trainer import nnUNetTrainerMRGen


class nnUNetTrainerMRGenAug(nnUNetTrainerMRGen):
    appearance_defaults: dict = {}  # AppearanceSettings keys a named variant sets; dataset.json overrides them

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        from_dataset = (dataset_json.get("mrgen") or {}).get("augmentation") or {}
        self.appearance = AppearanceSettings.from_dict({**self.appearance_defaults, **from_dataset})
        self.case_tracker = CaseTracker()
        self.print_to_log_file(f"appearance augmentation: {self.appearance.to_dict()}")

    def get_tr_and_val_datasets(self):
        """nnU-Net's datasets; the training one notes the case it loads when `p_target` needs to know it."""
        dataset_tr, dataset_val = super().get_tr_and_val_datasets()
        if self.appearance.p_target is not None:
            dataset_tr = TrackedDataset(dataset_tr, self.case_tracker)
        return dataset_tr, dataset_val

    def get_training_transforms(self, patch_size, *args, **kwargs):
        """nnU-Net's training transforms (same arguments) with AppearanceTransform after the spatial one."""
        if len(patch_size) != 2:
            raise MRGenError(f"{type(self).__name__} needs a 2d configuration (patch {tuple(patch_size)})",
                             "nnUNetv2_train CONFIGURATION", "train the 2d configuration")
        compose = super().get_training_transforms(patch_size, *args, **kwargs)
        steps = compose.transforms
        at = max(i for i, t in enumerate(steps) if isinstance(t, (SpatialTransform, Convert2DTo3DTransform))) + 1
        steps.insert(at, AppearanceTransform(self.appearance, frozenset(self.mrgen_not_validated), self.case_tracker))
        return compose


class nnUNetTrainerMRGenAugSLA(nnUNetTrainerMRGenAug):
    """SLAug's styles only (Su et al. 2023): global and class-level location-scale, no GIN, no label-map images."""

    appearance_defaults = {"weights": {"global": 0.5, "class": 0.5}}


class nnUNetTrainerMRGenAugIPA(nnUNetTrainerMRGenAug):
    """The default mix plus `ipa` (two styles blended by a smooth random field: GIN+IPA's augmentation without its
    consistency loss), which varies intensity within a structure as well as between structures."""

    appearance_defaults = {"weights": {"global": 0.2, "class": 0.2, "gin": 0.15, "labelmap": 0.15, "ipa": 0.3}}


class nnUNetTrainerMRGenAugKeep(nnUNetTrainerMRGenAug):
    """The default mix on the source cases only; synthetic, translated and pseudo-labelled cases keep the target
    sequence's appearance they were made or scanned with (nnU-Net's own intensity augmentation still applies)."""

    appearance_defaults = {"p_target": 0.0}


def symmetric_kl(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of ½ (KL(p_a || p_b) + KL(p_b || p_a)), p = softmax over classes. Logits (N, K, H, W) each;
    a scalar >= 0, 0 exactly when the two predictions agree."""
    log_a, log_b = torch.log_softmax(logits_a.float(), 1), torch.log_softmax(logits_b.float(), 1)
    return 0.5 * ((log_a.exp() * (log_a - log_b)).sum(1) + (log_b.exp() * (log_b - log_a)).sum(1)).mean()


class nnUNetTrainerMRGenAugCons(nnUNetTrainerMRGenAug):
    """GIN+IPA's consistency regularisation (Ouyang et al. 2022) at nnU-Net's batch size: the second half of every
    training batch is replaced by the first half's patches in a fresh appearance (same geometry and labels; the
    style drawn from the trainer's own mix), and the loss adds `consistency_weight` x the symmetric KL divergence
    between the two views' full-resolution predictions: the network is asked to predict the same anatomy
    whatever the contrast, not only to be right on each contrast. Per-iteration cost stays nnU-Net's (same batch;
    the redraw is a few ms); each iteration sees half as many distinct patches."""

    consistency_weight: float = 1.0

    def train_step(self, batch: dict) -> dict:
        """nnU-Net's own step on the paired batch, with the consistency term added to its loss."""
        data, target = batch["data"], batch["target"]
        half = data.shape[0] // 2
        if half == 0:
            return super().train_step(batch)
        targets = target if isinstance(target, list) else [target]
        rng = np.random.default_rng(np.random.randint(0, 2**31 - 1))
        if getattr(self, "_view_styles", None) is None:
            self._view_styles = AppearanceTransform(self.appearance)  # the trainer's own style mix
        styles = self._view_styles
        views = torch.stack([redraw_channels(data[i], targets[0][i, 0].numpy(), str(
            rng.choice(styles.styles, p=styles.probabilities)), rng) for i in range(half)])
        data = torch.cat([data[:half], views, data[2 * half:]])
        targets = [torch.cat([t[:half], t[:half], t[2 * half:]]) for t in targets]

        segmentation_loss = self.loss

        def loss_with_consistency(output, target):
            logits = output[0] if isinstance(output, (list, tuple)) else output
            return segmentation_loss(output, target) + self.consistency_weight * symmetric_kl(
                logits[:half], logits[half:2 * half])

        self.loss = loss_with_consistency
        try:
            return super().train_step({**batch, "data": data,
                                       "target": targets if isinstance(target, list) else targets[0]})
        finally:
            self.loss = segmentation_loss
