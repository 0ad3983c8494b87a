"""nnUNetTrainerMRGenAug: nnUNetTrainerMRGen plus an on-the-fly appearance redraw of every training sample.

One hook: `get_training_transforms` takes nnU-Net's own training transforms and inserts `AppearanceTransform`
right after the spatial transform (so it sees the final patch and its segmentation, before nnU-Net's noise, blur,
brightness, contrast, low-resolution and gamma transforms). Validation transforms are nnU-Net's: validation and
the test set see real appearance only. Everything of nnUNetTrainerMRGen (real-only validation, real:synthetic
sampling) applies unchanged, and a plain nnU-Net dataset (no `mrgen` key) trains with the default settings.

Settings: `mrgen.augmentation` in dataset.json, e.g. `{"p": 0.8, "weights": {"global": 0.3, "class": 0.3,
"gin": 0.2, "labelmap": 0.2}}` (appearance_transform.AppearanceSettings), over the class's `appearance_defaults`.
Named variants change only the defaults: `nnUNetTrainerMRGenAugSLA` draws SLAug's two styles (global and
class-level location-scale) only; `nnUNetTrainerMRGenAugIPA` adds GIN+IPA-style blends of two styles. 2d configurations only (the tool is 2D).
"""

from __future__ import annotations

import torch
from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform
from batchgeneratorsv2.transforms.utils.pseudo2d import Convert2DTo3DTransform

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.trainers.appearance_transform import AppearanceSettings, AppearanceTransform
from mrgen_nnunet.trainers.mrgen_trainer import nnUNetTrainerMRGen


class nnUNetTrainerMRGenAug(nnUNetTrainerMRGen):
    appearance_defaults: dict = {}  # AppearanceSettings keys a named variant sets; dataset.json overrides them

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        from_dataset = (dataset_json.get("mrgen") or {}).get("augmentation") or {}
        self.appearance = AppearanceSettings.from_dict({**self.appearance_defaults, **from_dataset})
        self.print_to_log_file(f"appearance augmentation: {self.appearance.to_dict()}")

    def get_training_transforms(self, patch_size, *args, **kwargs):
        """nnU-Net's training transforms (same arguments) with AppearanceTransform after the spatial one."""
        if len(patch_size) != 2:
            raise MRGenError(f"{type(self).__name__} needs a 2d configuration (patch {tuple(patch_size)})",
                             "nnUNetv2_train CONFIGURATION", "train the 2d configuration")
        compose = super().get_training_transforms(patch_size, *args, **kwargs)
        steps = compose.transforms
        at = max(i for i, t in enumerate(steps) if isinstance(t, (SpatialTransform, Convert2DTo3DTransform))) + 1
        steps.insert(at, AppearanceTransform(self.appearance))
        return compose


class nnUNetTrainerMRGenAugSLA(nnUNetTrainerMRGenAug):
    """SLAug's styles only (Su et al. 2023): global and class-level location-scale, no GIN, no label-map images."""

    appearance_defaults = {"weights": {"global": 0.5, "class": 0.5}}


class nnUNetTrainerMRGenAugIPA(nnUNetTrainerMRGenAug):
    """The default mix plus `ipa` (two styles blended by a smooth random field: GIN+IPA's augmentation without its
    consistency loss), which varies intensity within a structure as well as between structures."""

    appearance_defaults = {"weights": {"global": 0.2, "class": 0.2, "gin": 0.15, "labelmap": 0.15, "ipa": 0.3}}
