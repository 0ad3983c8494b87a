"""nnUNetTrainerMRGen: train on real + synthetic cases, validate on real cases only, sample real:synthetic by ratio.

Reads the `"mrgen"` key of the dataset's dataset.json (CONTRACTS §2; nnU-Net copies custom keys into the
preprocessed folder): `patients` (case -> patient id), `synthetic_cases`, `real_to_synthetic_ratio`. A dataset
without that key trains exactly like `nnUNetTrainer`. Two hooks only:

- `do_split`: a patient-grouped split whose validation folds hold only real cases, written to
  `splits_final.json` in the preprocessed folder (so nnU-Net's own tools see the same split). An existing
  `splits_final.json` is used unless it validates on synthetic cases, which is refused.
  Every case of the split must have its label in `gt_segmentations` (nnU-Net's final validation reads it): a
  label-less case is refused here, before training, and so is a dataset marked `images_only`.
- `get_dataloaders`: the training loader gets per-case `sampling_probabilities` (nnU-Net passes None).

On CPU it also honours OMP_NUM_THREADS: `nnUNetv2_train -device cpu` gives torch every core whatever that says,
and two trainings (or a training beside synthesis) on a shared machine then oversubscribe it (measured on a 2-core
machine beside one single-thread job: 134 s per epoch with nnU-Net's 2 threads, 82 s with OMP_NUM_THREADS=1). A trainer runs inside nnU-Net's own process, which
is configured through its environment; this is the one variable read there.
"""

from __future__ import annotations

import json
import os
from os.path import isfile, join

import torch
from batchgenerators.dataloading.nondet_multi_threaded_augmenter import NonDetMultiThreadedAugmenter
from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter
from nnunetv2.training.dataloading.data_loader import nnUNetDataLoader
from nnunetv2.training.dataloading.nnunet_dataset import infer_dataset_class
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.default_n_proc_DA import get_allowed_n_proc_DA

from mrgen_nnunet.data.io import write_atomic, write_text_atomic
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.trainers.sampling import sampling_probabilities
from mrgen_nnunet.trainers.splits import cases_without_labels, patient_splits, validation_has_synthetic


class nnUNetTrainerMRGen(nnUNetTrainer):
    # (epochs, training iterations per epoch or None = nnU-Net's); set by the short variants (training_length.py)
    schedule: tuple[int, int | None] | None = None

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        if self.schedule is not None:
            self.num_epochs, iterations = self.schedule
            if iterations is not None:
                self.num_iterations_per_epoch = iterations
                self.num_val_iterations_per_epoch = max(1, iterations // 5)
            # nnU-Net checkpoints every 50 epochs: a short schedule killed midway (`--c`) would restart from zero
            self.save_every = max(1, min(self.save_every, self.num_epochs // 6))
        meta = dataset_json.get("mrgen") or {}
        if meta.get("images_only"):  # target scans converted without labels (imagesTs): nothing to train on
            raise MRGenError(f"dataset {self.plans_manager.dataset_name} is images-only (no labels)",
                             "dataset.json mrgen.images_only", "train on a labelled dataset; predict or "
                             "pseudo-label these images")
        self.mrgen_patients: dict[str, str] = meta.get("patients") or {}
        self.mrgen_synthetic: set[str] = set(meta.get("synthetic_cases") or [])
        # pseudo-labelled real images: sampled as real cases, never validated on (their labels are predictions)
        self.mrgen_not_validated: set[str] = self.mrgen_synthetic | set(meta.get("pseudo_cases") or [])
        self.mrgen_ratio: float | None = meta.get("real_to_synthetic_ratio")
        threads = os.environ.get("OMP_NUM_THREADS", "")
        if self.device.type == "cpu" and threads.isdigit() and int(threads) > 0:
            torch.set_num_threads(int(threads))
            self.print_to_log_file(f"torch threads: {threads} (OMP_NUM_THREADS; nnUNetv2_train had set "
                                   f"{os.cpu_count()})")

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net writes a checkpoint in place: a run killed during the write (SIGKILL, a lost machine) leaves a
        truncated checkpoint_latest.pth that `nnUNetv2_train --c` cannot load ("failed finding central
        directory"). Write a hidden sibling and rename it, so the file is always the previous or the new one."""
        if self.local_rank != 0 or self.disable_checkpointing:
            return super().save_checkpoint(filename)  # nnU-Net writes nothing then
        save = super().save_checkpoint
        write_atomic(filename, lambda tmp: save(str(tmp)))

    def do_split(self):
        tr_keys, val_keys = self._split()
        gt_folder = join(self.preprocessed_dataset_folder_base, "gt_segmentations")
        unlabelled = cases_without_labels(tr_keys + val_keys, gt_folder, self.dataset_json["file_ending"])
        if unlabelled:  # nnU-Net's final validation would fail on it after the whole training
            raise MRGenError(f"{len(unlabelled)} case(s) have no label, e.g. {unlabelled[0]!r}",
                             join(gt_folder, unlabelled[0] + self.dataset_json["file_ending"]),
                             "give every imagesTr case a labelsTr file and preprocess again; unlabelled images "
                             "belong in imagesTs")
        return tr_keys, val_keys

    def _split(self):
        if not self.mrgen_patients or self.fold == "all":
            return super().do_split()
        if self.dataset_class is None:
            self.dataset_class = infer_dataset_class(self.preprocessed_dataset_folder)
        splits_file = join(self.preprocessed_dataset_folder_base, "splits_final.json")
        if isfile(splits_file):
            with open(splits_file, encoding="utf-8") as f:
                splits = json.load(f)
            leaked = validation_has_synthetic(splits, self.mrgen_not_validated)
            # a synthetic-only dataset has nothing else to validate on (patient_splits does the same)
            has_real = any(c not in self.mrgen_not_validated for c in self.mrgen_patients)
            if leaked and has_real:
                raise MRGenError(f"splits_final.json validates on {len(leaked)} synthetic case(s), e.g. {leaked[0]!r}",
                                 splits_file, "delete it; nnUNetTrainerMRGen then writes a patient-grouped real-only split")
            self.print_to_log_file("Using splits from existing split file:", splits_file)
        else:
            cases = list(self.dataset_class.get_identifiers(self.preprocessed_dataset_folder))
            splits = patient_splits(cases, self.mrgen_patients, self.mrgen_not_validated)
            write_text_atomic(json.dumps(splits, indent=1), splits_file)
            self.print_to_log_file(f"Wrote a {len(splits)}-fold patient-grouped, real-only-validation split:",
                                   splits_file)
        if self.fold >= len(splits):
            raise MRGenError(f"fold {self.fold} requested but the split has {len(splits)} folds", splits_file,
                             f"use a fold in 0..{len(splits) - 1}")
        tr_keys, val_keys = splits[self.fold]["train"], splits[self.fold]["val"]
        n_syn = sum(c in self.mrgen_synthetic for c in tr_keys)
        self.print_to_log_file(f"Fold {self.fold}: {len(tr_keys)} training cases ({n_syn} synthetic), "
                               f"{len(val_keys)} validation cases.")
        if all(c in self.mrgen_not_validated for c in val_keys):
            self.print_to_log_file("WARNING: no real cases in this dataset; validating on synthetic cases.")
        return tr_keys, val_keys

    def get_dataloaders(self):
        if self.mrgen_ratio is None or not self.mrgen_synthetic:
            return super().get_dataloaders()
        if self.dataset_class is None:
            self.dataset_class = infer_dataset_class(self.preprocessed_dataset_folder)
        dataset_tr, dataset_val = self.get_tr_and_val_datasets()
        p = sampling_probabilities(list(dataset_tr.identifiers), self.mrgen_synthetic, self.mrgen_ratio)
        if p is not None:
            self.print_to_log_file(f"Sampling real:synthetic = {self.mrgen_ratio}:1 "
                                   f"(per-case probabilities {p.max():.4g} / {p.min():.4g}).")

        patch_size = self.configuration_manager.patch_size
        ds_scales = self._get_deep_supervision_scales()
        rotation, dummy_2d, initial_patch_size, mirror_axes = \
            self.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
        lm = self.label_manager
        regions = lm.foreground_regions if lm.has_regions else None
        tr_transforms = self.get_training_transforms(
            patch_size, rotation, ds_scales, mirror_axes, dummy_2d,
            use_mask_for_norm=self.configuration_manager.use_mask_for_norm, is_cascaded=self.is_cascaded,
            foreground_labels=lm.foreground_labels, regions=regions, ignore_label=lm.ignore_label)
        val_transforms = self.get_validation_transforms(
            ds_scales, is_cascaded=self.is_cascaded, foreground_labels=lm.foreground_labels, regions=regions,
            ignore_label=lm.ignore_label)
        loaders = [nnUNetDataLoader(ds, self.batch_size, size, patch_size, lm,
                                    oversample_foreground_percent=self.oversample_foreground_percent,
                                    sampling_probabilities=probs, transforms=transforms,
                                    probabilistic_oversampling=self.probabilistic_oversampling)
                   for ds, size, probs, transforms in ((dataset_tr, initial_patch_size, p, tr_transforms),
                                                       (dataset_val, patch_size, None, val_transforms))]
        n_proc = get_allowed_n_proc_DA()
        if n_proc == 0:
            gen_tr, gen_val = (SingleThreadedAugmenter(dl, None) for dl in loaders)
        else:
            pin = self.device.type == "cuda"
            gen_tr = NonDetMultiThreadedAugmenter(loaders[0], None, num_processes=n_proc,
                                                  num_cached=max(6, n_proc // 2), pin_memory=pin, wait_time=0.002)
            gen_val = NonDetMultiThreadedAugmenter(loaders[1], None, num_processes=max(1, n_proc // 2),
                                                   num_cached=max(3, n_proc // 4), pin_memory=pin, wait_time=0.002)
        next(gen_tr)
        next(gen_val)
        return gen_tr, gen_val
