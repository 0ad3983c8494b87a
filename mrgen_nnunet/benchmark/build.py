"""The benchmark's datasets: every part and row dataset built at most once, reused only with identical settings
(through the ledger). Used by protocol.run_benchmark."""

from __future__ import annotations

import shutil
from pathlib import Path

from mrgen_nnunet.benchmark.config import BenchmarkConfig, DataSpec
from mrgen_nnunet.benchmark.ledger import Ledger
from mrgen_nnunet.benchmark.rows import ROWS, Row, row_key_parts
from mrgen_nnunet.data.nnunet_raw import datasets_with_id, find_dataset, read_dataset_json


def seed_environment(env: dict, seed: int) -> dict:
    """`env` with nnU-Net's results root for one seed, <nnUNet_results>/seed<seed>. nnU-Net names a model by
    dataset, trainer, plans and fold only, and rows whose dataset does not depend on the seed (source, oracle)
    must still train once per seed."""
    return {**env, "nnUNet_results": str(Path(env["nnUNet_results"]) / f"seed{seed}")}


def row_dataset_key(row: Row, seed: int, ratio: float | None) -> str:
    """The ledger key of a row's merged dataset (rows of two or more parts) for one seed."""
    return "row:" + row_key_parts(row) + (f":ratio{ratio:g}" if ratio is not None else "") + f":seed{seed}"


def _name_part(key: str) -> str:
    """A ledger key's row/part description as a dataset name part: `source+pseudo@a,b#finetune` ->
    `source_pseudo_from_a_and_b_finetune`."""
    return key.replace("+", "_").replace("@", "_from_").replace(",", "_and_").replace("#", "_")


def _spec_settings(spec: DataSpec, **extra) -> dict:
    return {"layout": spec.layout, "root": str(spec.root), "sequence": spec.sequence, "patients": spec.patients,
            **extra}


class Build:
    """The datasets of one run, each built at most once and reused only with identical settings."""

    def __init__(self, cfg: BenchmarkConfig, env: dict, ledger: Ledger, progress):
        self.cfg, self.env, self.ledger, self.progress = cfg, env, ledger, progress
        self.raw = Path(env["nnUNet_raw"])
        self.settings: dict[str, dict] = {}  # key -> settings of what was built (parts pass theirs on)

    def _remove_dataset(self, dataset_id: int):
        def remove():
            roots = [self.raw, Path(self.env["nnUNet_preprocessed"]), *Path(self.env["nnUNet_results"]).glob("seed*")]
            for root in roots:
                for folder in datasets_with_id(root, dataset_id):
                    shutil.rmtree(folder)
        return remove

    def dataset(self, key: str, settings: dict, build) -> Path:
        """The dataset of `key`: reused when it exists with `settings`, else `build(dataset_id)` -> folder."""
        dataset_id = self.ledger.dataset_id(key)
        exists = bool(datasets_with_id(self.raw, dataset_id))
        self.settings[key] = settings
        if self.ledger.reuse(key, settings, exists, self._remove_dataset(dataset_id)):
            return find_dataset(self.raw, dataset_id)
        self.progress.log(f"building {key} (Dataset{dataset_id:03d})")
        return build(dataset_id)

    def convert(self, key: str, spec: DataSpec, as_slices: bool, all_slices: bool = False,
                index: Path | None = None) -> Path:
        from mrgen_nnunet.dataset_converters import get_converter

        settings = _spec_settings(spec, as_slices=as_slices, all_slices=all_slices)
        dataset_id = self.ledger.dataset_id(key)
        exists = bool(datasets_with_id(self.raw, dataset_id))
        if exists and index is not None and not index.is_file():  # the index is part of the output
            self._remove_dataset(dataset_id)()
        return self.dataset(key, settings, lambda i: get_converter(spec.layout)(
            spec.root, self.raw, i, name=key, sequence=spec.sequence, patients=spec.patients, as_slices=as_slices,
            all_slices=all_slices, index=index, force=index is not None))

    def generator(self, index: Path, target_modality: str) -> Path:
        from mrgen_nnunet.generator.train import TrainOptions, train_generator

        cfg = self.cfg
        if cfg.generator != "train":
            return Path(cfg.generator)
        folder = cfg.out / "generator"
        settings = {"source": self.settings["source"], "target": self.settings["target"],
                    "preset": cfg.generator_preset, "steps": cfg.generator_steps,
                    "resolution": cfg.generator_resolution, "target_modality": target_modality}
        if cfg.generator_minutes:  # only when set: older ledgers keep their fingerprints
            settings["minutes"] = cfg.generator_minutes
        self.settings["generator"] = settings
        done = (folder / "mrgen_generator.json").is_file() and (folder / "controlnet").is_dir()
        if self.ledger.reuse("generator", settings, done, lambda: shutil.rmtree(folder)):
            return folder
        budget = f", at most {cfg.generator_minutes:g} min" if cfg.generator_minutes else ""
        self.progress.log(f"training the '{cfg.generator_preset}' generator ({cfg.generator_steps} steps per stage"
                          f"{budget})")
        return train_generator(index, folder, preset=cfg.generator_preset, target_modality=target_modality,
                               steps=cfg.generator_steps, resolution=cfg.generator_resolution,
                               options=TrainOptions(minutes=cfg.generator_minutes))

    def synthetic(self, seed: int, source: Path, generator: Path, target_modality: str,
                  part: str = "synthetic") -> Path:
        """The `synthetic` (mask mode) or `translate` part of `seed`."""
        from mrgen_nnunet.synthesis.run import SynthesisOptions, synthesize

        cfg = self.cfg
        translate = {"mode": "translate", "strength": cfg.translate_strength, "translate": cfg.translate_method} \
            if part == "translate" else {}
        settings = {"generator": self.settings.get("generator", str(generator)), "source": self.settings["source"],
                    "filter": cfg.filter, "profile": cfg.profile, "candidates": cfg.candidates, "keep": cfg.keep,
                    "inference_steps": cfg.inference_steps, "guidance": cfg.guidance_scale, "seed": seed,
                    "device": cfg.device, **translate}

        def build(dataset_id: int) -> Path:
            filter_model = str(self.filter_model()) if cfg.filter == "nnunet" else None
            synthesize(SynthesisOptions(
                target=target_modality, source=str(source), generator=str(generator), out_raw=str(self.raw),
                out_dataset=dataset_id, name=f"{part}_s{seed}", samples_per_mask=cfg.keep,
                max_tries=cfg.candidates, steps=cfg.inference_steps, guidance=cfg.guidance_scale, seed=seed,
                filter=cfg.filter, profile=cfg.profile, filter_model=filter_model, device=cfg.device, **translate))
            return find_dataset(self.raw, dataset_id)

        return self.dataset(f"part:{part}:seed{seed}", settings, build)

    def filter_model(self) -> Path:
        """The `nnunet` filter's model: the source-only row's model of the first seed (trained by the caller)."""
        from mrgen_nnunet.benchmark.plans import plans_name
        from mrgen_nnunet.trainers.nnunet_run import model_folder

        source = find_dataset(self.raw, self.ledger.dataset_id("source"))
        return model_folder(seed_environment(self.env, self.cfg.seeds[0])["nnUNet_results"], source.name,
                            self.cfg.trainer, plans_name(self.cfg.spacing_mm))

    def randomised(self, style: str, seed: int, source: Path) -> Path:
        from mrgen_nnunet.benchmark.augment import augment_slice_dataset

        settings = {"source": self.settings["source"], "style": style, "copies": self.cfg.copies, "seed": seed}
        return self.dataset(f"part:{style}:seed{seed}", settings, lambda i: augment_slice_dataset(
            source, self.raw, i, f"{style}_s{seed}", style, self.cfg.copies, seed))

    def pseudo(self, seed: int, base: str, base_model: Path | list[Path], target: Path, test: Path) -> Path:
        """The target training images pseudo-labelled by the `base` row's model of `seed`, or by the ensemble of
        several rows' models (`base` "a,b", one model folder each; labels of `target` are never read; the test
        patients are excluded, and refused if they were there)."""
        from mrgen_nnunet.pseudo_labels.run import pseudo_label

        test_meta = read_dataset_json(test)["mrgen"]
        exclude = set(test_meta.get("patients", {}).values()) | set(test_meta.get("patients", {}))
        labellers = base.split(",")
        model_settings = [self.settings[f"model:{r}:seed{seed}"] for r in labellers]
        settings = {"base": model_settings[0] if len(labellers) == 1 else model_settings,
                    "target": self.settings["target"],
                    "rules": self.cfg.pseudo_label_rules, "exclude": sorted(exclude), "device": self.cfg.device}
        from mrgen_nnunet.pseudo_labels.rules import PseudoLabelRules

        return self.dataset(f"part:pseudo:{base}:seed{seed}", settings, lambda i: pseudo_label(
            base_model, target, self.raw, i, f"pseudo_{_name_part(base)}_s{seed}",
            rules=PseudoLabelRules(**self.cfg.pseudo_label_rules), exclude=exclude, device=self.cfg.device,
            sequence=self.cfg.target.sequence))

    def row(self, name: str, seed: int, parts: dict[str, Path], part_keys: dict[str, str]) -> Path:
        from mrgen_nnunet.data.slice_datasets import check_labelled, merge_slice_datasets

        row = ROWS[name]
        for p in row.parts:  # an images-only target (generator, pseudo-labels) or source never trains a row
            check_labelled(parts[p], f"part '{p}' of row '{name}'")
        if len(row.parts) == 1:
            self.settings[f"row:{name}:seed{seed}"] = self.settings[part_keys[row.parts[0]]]
            return parts[row.parts[0]]
        ratio = self.cfg.real_to_synthetic_ratio if row.uses_ratio else None
        settings = {"parts": [self.settings[part_keys[p]] for p in row.parts], "ratio": ratio}
        key = row_dataset_key(row, seed, ratio)
        self.settings[f"row:{name}:seed{seed}"] = settings
        return self.dataset(key, settings, lambda i: merge_slice_datasets(
            self.raw, i, f"{_name_part(row_key_parts(row))}_s{seed}",
            [parts[p] for p in row.parts], ratio))
