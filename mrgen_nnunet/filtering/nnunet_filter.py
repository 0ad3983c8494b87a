"""nnU-Net filter: a trained nnU-Net model segments each candidate; per-organ IoU vs the conditioning mask.

Works offline with any trained model folder (e.g. a source-trained model, or one trained on a first synthetic
round). Because nnU-Net predicts *all* labels, it also finds organs the mask does not contain — the generator
drew an unrequested organ (MRGen's false-negative problem) — and those candidates are rejected.
Confidence of an organ = mean softmax probability of that organ over the conditioning mask's organ pixels.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.filtering.selection import CandidateScores, OrganScore, iou
from mrgen_nnunet.weights import load_torch_file

UNREQUESTED_MIN_FRACTION = 0.002  # an organ outside the mask counts when it covers ≥ 0.2 % of the image


def _trainer_class(name: str):
    """nnU-Net looks a checkpoint's trainer class up by name in its own package or in the folder named by
    nnUNet_extTrainer; a model trained with nnUNetTrainerMRGen* must load without that variable."""
    from nnunetv2.utilities.find_objects import recursive_find_trainer_class_by_name

    from mrgen_nnunet.trainers.training_length import TRAINERS

    return TRAINERS.get(name) or recursive_find_trainer_class_by_name(name)


class NnUNetFilter:
    """Scores candidates with an in-process `nnUNetPredictor` (2D model, one candidate at a time)."""

    name = "nnunet"
    checks = True

    def __init__(self, predictor, model_id: str, unrequested_min_fraction: float = UNREQUESTED_MIN_FRACTION):
        self.predictor = predictor
        self.id = f"nnunet:{model_id}"
        self.unrequested_min_fraction = unrequested_min_fraction
        # the classes the model predicts: nnU-Net's `ignore` label (e.g. a model trained on pseudo-labels, whose
        # unconfident pixels are ignored) masks the loss and is never an output channel
        self.labels = {k: int(v) for k, v in predictor.dataset_json["labels"].items() if k != "ignore"}

    @classmethod
    def from_folder(cls, folder: str | Path, fold: int | str | Sequence[int | str] = 0,
                    checkpoint: str = "checkpoint_final.pth", device: str = "cpu",
                    trust: bool = False) -> NnUNetFilter:
        """Load `folder` (…/DatasetNNN_X/TRAINER__PLANS__2d) with `fold_{fold}/{checkpoint}`; several folds make
        one predictor that averages their logits (as `nnUNetv2_predict -f 0 1 2 3 4` does).

        The checkpoint goes through `load_torch_file` (weights_only; `trust` allows the full pickle) and its state
        is handed to the predictor — nnU-Net's own loader would unpickle it with weights_only=False.
        """
        import torch
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
        from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
        from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

        folder = Path(folder)
        folds = [fold] if isinstance(fold, (int, str)) else list(fold)
        if not folds:
            raise MRGenError("no fold given", folder, "name at least one fold, e.g. 0")
        states = []
        model_files = (folder / "plans.json").is_file() and (folder / "dataset.json").is_file()
        for f in folds:
            ckpt = folder / f"fold_{f}" / checkpoint
            if not model_files or not ckpt.is_file():
                raise MRGenError("not a trained nnU-Net model folder", ckpt,
                                 "pass nnUNet_results/DatasetNNN_X/<trainer>__<plans>__2d with a finished fold")
            state = load_torch_file(ckpt, trust=trust, trust_option="--trust-checkpoint")
            try:
                states.append((state["trainer_name"], state["init_args"]["configuration"], state["network_weights"],
                               state.get("inference_allowed_mirroring_axes")))
            except (KeyError, TypeError):
                raise MRGenError("not an nnU-Net checkpoint (no trainer_name/init_args/network_weights)", ckpt,
                                 "pass a checkpoint written by nnUNetv2_train") from None
            if states[-1][:2] != states[0][:2]:
                raise MRGenError(f"fold {f} was trained as {states[-1][:2]}, fold {folds[0]} as {states[0][:2]}",
                                 ckpt, "ensemble folds of one trainer and configuration")
        trainer_name, configuration, _, mirroring = states[0]
        dataset_json = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
        plans = PlansManager(json.loads((folder / "plans.json").read_text(encoding="utf-8")))
        config = plans.get_configuration(configuration)
        network = _trainer_class(trainer_name).build_network_architecture(
            plans, config, determine_num_input_channels(plans, config, dataset_json),
            plans.get_label_manager(dataset_json).num_segmentation_heads, enable_deep_supervision=False)
        network.load_state_dict(states[0][2])
        predictor = nnUNetPredictor(tile_step_size=0.5, use_gaussian=True, use_mirroring=False,
                                    perform_everything_on_device=False, device=torch.device(device),
                                    allow_tqdm=False)
        predictor.manual_initialization(network, plans, config, [s[2] for s in states], dataset_json, trainer_name,
                                        mirroring)
        if len(config.patch_size) != 2:
            raise MRGenError("the filter model is not a 2D nnU-Net model", folder, "train the '2d' configuration")
        return cls(predictor, f"{folder.parent.name}/{folder.name}/fold_{'+'.join(map(str, folds))}")

    def check_labels(self, labels: dict[str, int]) -> None:
        """MRGenError unless the model segments exactly the source label map."""
        if {k: int(v) for k, v in labels.items()} != self.labels:
            raise MRGenError(f"filter model labels {self.labels} differ from the source labels {labels}",
                             "--filter-model", "use an nnU-Net model trained on this label map")

    def score(self, images: np.ndarray, label_maps: np.ndarray, labels: dict[str, int],
              pixel_spacing: list[float] | None = None) -> list[CandidateScores]:
        """images (B, N, N) float32 in [-1, 1], label_maps (B, N, N) uint8, pixel_spacing [mm] per image ->
        one CandidateScores per image (`prediction` = nnU-Net's (N, N) label map)."""
        names = {v: k for k, v in self.labels.items() if v != 0}
        out = []
        for b in range(len(images)):
            sp = float(pixel_spacing[b]) if pixel_spacing else 1.0
            seg, probs = self.predictor.predict_single_npy_array(
                images[b][None, None].astype(np.float32), {"spacing": [999.0, sp, sp]},
                save_or_return_probabilities=True)
            seg, probs = np.asarray(seg)[0].astype(np.uint8), np.asarray(probs)[:, 0]  # (N, N), (K, N, N)
            organs, unrequested = {}, {}
            for value, name in names.items():
                target = label_maps[b] == value
                if target.any():
                    organs[name] = OrganScore(iou(seg == value, target), float(probs[value][target].mean()))
                else:
                    fraction = float((seg == value).mean())
                    if fraction >= self.unrequested_min_fraction:
                        unrequested[name] = fraction
            out.append(CandidateScores(organs, unrequested, seg))
        return out
