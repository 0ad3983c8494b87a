"""Real nnU-Net, tiny: plan a 2D slice dataset (some cases synthetic) once, then
- the trainer in-process: real-only patient-grouped split, real:synthetic sampling, plain fallback;
- the real CLIs: nnUNetv2_train -tr nnUNetTrainerMRGen_2epochs_10it via nnUNet_extTrainer=$(mrgen-nnunet
  trainer-path) -> nnUNetv2_predict (2d model on 3D test volumes) -> mrgen-nnunet evaluate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mrgen_nnunet.cli.main import main
from mrgen_nnunet.data.io import read_image
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.trainers.nnunet_run import find_raw_dataset, nnunet_environment, plan_and_preprocess

BIN = Path(sys.executable).parent
TRAINER = "nnUNetTrainerMRGen_2epochs_10it"


@pytest.fixture(scope="module")
def planned(tmp_path_factory, tiny_dataset_writer):
    root = tmp_path_factory.mktemp("nnunet")
    env = nnunet_environment(root / "raw", root / "pre", root / "res", n_proc_da=0, n_proc=1,
                             base={**os.environ, "OMP_NUM_THREADS": "1"})
    folder = tiny_dataset_writer(root / "raw")
    pre = plan_and_preprocess(501, env)
    return env, folder, pre


def _set_env(monkeypatch, env):
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_n_proc_DA", "nnUNet_def_n_proc"):
        monkeypatch.setenv(key, env[key])


def _trainer(pre: Path, dataset_json: dict):
    import torch

    from mrgen_nnunet.trainers.training_length import nnUNetTrainerMRGen_1epochs_10it

    plans = json.loads((pre / "nnUNetPlans.json").read_text(encoding="utf-8"))
    plans["continue_training"] = False
    return nnUNetTrainerMRGen_1epochs_10it(plans, "2d", 0, dataset_json, device=torch.device("cpu"))


def test_trainer_split_sampling_and_plain_fallback(planned, monkeypatch):
    env, folder, pre = planned
    _set_env(monkeypatch, env)
    dataset_json = json.loads((pre / "dataset.json").read_text(encoding="utf-8"))
    synthetic = set(dataset_json["mrgen"]["synthetic_cases"])
    trainer = _trainer(pre, dataset_json)
    trainer.initialize()
    tr_keys, val_keys = trainer.do_split()
    assert val_keys and not set(val_keys) & synthetic
    assert set(tr_keys) & synthetic
    splits = json.loads((pre / "splits_final.json").read_text(encoding="utf-8"))
    assert all(not set(s["val"]) & synthetic for s in splits)

    gen_tr, _ = trainer.get_dataloaders()
    loader = gen_tr.data_loader
    n_syn = sum(k in synthetic for k in loader.indices)
    assert 0 < n_syn < len(loader.indices) and n_syn / len(loader.indices) < 0.45  # uniform would under-draw
    drawn = np.concatenate([loader.get_indices() for _ in range(1500)])
    assert np.mean([k in synthetic for k in drawn]) == pytest.approx(0.5, abs=0.03)  # ratio 1.0

    plain = {k: v for k, v in dataset_json.items() if k != "mrgen"}
    fallback = _trainer(pre, plain)
    fallback.initialize()
    gen_plain, _ = fallback.get_dataloaders()
    assert gen_plain.data_loader.sampling_probabilities is None
    assert fallback.do_split() == (splits[0]["train"], splits[0]["val"])  # nnU-Net's own path reads the file

    original = (pre / "splits_final.json").read_text(encoding="utf-8")
    try:
        (pre / "splits_final.json").write_text(json.dumps([{"train": tr_keys, "val": sorted(synthetic)}]))
        with pytest.raises(MRGenError, match="validates on .* synthetic case"):
            trainer.do_split()
        # a synthetic-only dataset (the MRGen protocol row) validates on synthetic cases: nnU-Net calls do_split
        # again for its final validation, which must accept the split the first call wrote
        (pre / "splits_final.json").unlink()
        only = json.loads(json.dumps(dataset_json))
        only["mrgen"]["synthetic_cases"] = sorted(only["mrgen"]["patients"])
        synthetic_only = _trainer(pre, only)
        first = synthetic_only.do_split()
        assert first[1] and synthetic_only.do_split() == first
    finally:
        (pre / "splits_final.json").write_text(original)


def test_label_less_case_and_images_only_dataset_are_refused(planned, monkeypatch):
    """A case whose label nnU-Net's final validation would look for in vain is refused at the split, before
    training; a dataset converted as images only (`mrgen.images_only`) is refused when the trainer is built."""
    env, _, pre = planned
    _set_env(monkeypatch, env)
    dataset_json = json.loads((pre / "dataset.json").read_text(encoding="utf-8"))
    gt = pre / "gt_segmentations" / "P0_z0.nii.gz"
    aside = gt.with_name("aside.bin")
    gt.rename(aside)
    try:
        with pytest.raises(MRGenError, match=r"1 case\(s\) have no label, e\.g\. 'P0_z0'.*P0_z0\.nii\.gz"):
            _trainer(pre, dataset_json).do_split()
    finally:
        aside.rename(gt)
    images_only = json.loads(json.dumps(dataset_json))
    images_only["mrgen"]["images_only"] = True
    with pytest.raises(MRGenError, match="is images-only"):
        _trainer(pre, images_only)


def test_real_clis_train_predict_3d_evaluate(planned, tmp_path):
    env, folder, pre = planned
    shim = subprocess.run([str(BIN / "mrgen-nnunet"), "trainer-path"], capture_output=True, text=True, check=True)
    env = {**env, "nnUNet_extTrainer": shim.stdout.strip()}
    subprocess.run([str(BIN / "nnUNetv2_train"), "501", "2d", "0", "-tr", TRAINER, "-device", "cpu"],
                   env=env, check=True, capture_output=True)
    synthetic = set(json.loads((folder / "dataset.json").read_text(encoding="utf-8"))["mrgen"]["synthetic_cases"])
    splits = json.loads((pre / "splits_final.json").read_text(encoding="utf-8"))
    assert all(s["val"] and not set(s["val"]) & synthetic for s in splits)
    validated = {p.name.removesuffix(".nii.gz") for p in
                 (Path(env["nnUNet_results"]) / folder.name / f"{TRAINER}__nnUNetPlans__2d/fold_0/validation")
                 .glob("*.nii.gz")}
    assert validated == set(splits[0]["val"])
    log = next((Path(env["nnUNet_results"]) / folder.name / f"{TRAINER}__nnUNetPlans__2d/fold_0").glob("training_log*"))
    assert "torch threads: 1 (OMP_NUM_THREADS" in log.read_text(encoding="utf-8")  # nnU-Net had set every core

    pred = tmp_path / "pred"
    subprocess.run([str(BIN / "nnUNetv2_predict"), "-i", str(folder / "imagesTs"), "-o", str(pred), "-d", "501",
                    "-c", "2d", "-f", "0", "-tr", TRAINER, "-device", "cpu", "-npp", "1", "-nps", "1",
                    "--disable_progress_bar"], env=env, check=True, capture_output=True)
    for gt_file in sorted((folder / "labelsTs").glob("*.nii.gz")):
        gt, gt_geo = read_image(gt_file)
        pr, pr_geo = read_image(pred / gt_file.name)
        assert gt.ndim == 3 and pr.shape == gt.shape == (4, 32, 32)
        assert np.allclose(pr_geo.spacing, gt_geo.spacing) and np.allclose(pr_geo.origin, gt_geo.origin)
        assert np.allclose(pr_geo.direction, gt_geo.direction)

    out = tmp_path / "eval"
    run = subprocess.run([str(BIN / "mrgen-nnunet"), "evaluate", "--pred", str(pred), "--gt",
                          str(folder / "labelsTs"), "--out", str(out)], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["n_cases"] == 2
    assert summary["mean"]["square"]["Dice"] > 0.9  # an easy bright square
    assert all(c["square"]["Dice"] > 0.85 for c in summary["cases"].values())

    # the same model as `synthesize --filter nnunet` model, loaded in-process without nnUNet_extTrainer
    from mrgen_nnunet.filtering.nnunet_filter import NnUNetFilter

    assert "nnUNet_extTrainer" not in os.environ
    model = NnUNetFilter.from_folder(Path(env["nnUNet_results"]) / folder.name / f"{TRAINER}__nnUNetPlans__2d")
    assert model.labels == {"background": 0, "square": 1}


def test_segment_train_unknown_trainer_is_one_line(planned, monkeypatch, capsys):
    env, _, _ = planned
    _set_env(monkeypatch, env)
    assert main(["segment", "train", "501", "-tr", "nnUNetTrainerNoSuchThing", "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown trainer 'nnUNetTrainerNoSuchThing'" in err[0]


def test_dataset_without_dataset_json_is_refused(tmp_path):
    (tmp_path / "raw" / "Dataset777_X" / "imagesTr").mkdir(parents=True)
    env = nnunet_environment(tmp_path / "raw", tmp_path / "pre", tmp_path / "res", base={})
    with pytest.raises(MRGenError, match="no dataset.json"):
        find_raw_dataset(777, env)
    assert env["nnUNet_extTrainer"].endswith("nnunet_ext") and "nnUNet_n_proc_DA" not in env


@pytest.mark.parametrize("trainer", ["nnUNetTrainerMRGenAug_2epochs_10it", "nnUNetTrainerMRGenAugCons_2epochs_10it",
                                     "nnUNetTrainerMRGenAugKeep_2epochs_10it"])
def test_augmented_trainer_trains_through_nnunet_cli(planned, trainer):
    """`nnUNetv2_train -tr nnUNetTrainerMRGenAug_2epochs_10it` through nnUNet_extTrainer: the appearance transform
    sits right after nnU-Net's spatial transform of the training pipeline, not in validation, and the run ends
    with a final checkpoint and a validation on real cases only. The consistency variant (its own train_step)
    trains the same way."""
    env, folder, pre = planned
    shim = subprocess.run([str(BIN / "mrgen-nnunet"), "trainer-path"], capture_output=True, text=True, check=True)
    run_env = {**env, "nnUNet_extTrainer": shim.stdout.strip()}
    subprocess.run([str(BIN / "nnUNetv2_train"), "501", "2d", "0", "-tr", trainer, "-device", "cpu"],
                   env=run_env, check=True, capture_output=True)
    fold = Path(env["nnUNet_results"]) / folder.name / f"{trainer}__nnUNetPlans__2d" / "fold_0"
    assert (fold / "checkpoint_final.pth").is_file()
    log = next(fold.glob("training_log*")).read_text(encoding="utf-8")
    assert "appearance augmentation: {'p': 0.8" in log
    synthetic = set(json.loads((folder / "dataset.json").read_text(encoding="utf-8"))["mrgen"]["synthetic_cases"])
    validated = {p.name.removesuffix(".nii.gz") for p in (fold / "validation").glob("*.nii.gz")}
    assert validated and not validated & synthetic


def test_augmented_trainer_inserts_transform_in_training_only(planned, monkeypatch):
    import torch
    from batchgeneratorsv2.transforms.spatial.spatial import SpatialTransform

    from mrgen_nnunet.trainers.appearance_transform import AppearanceTransform
    from mrgen_nnunet.trainers.training_length import nnUNetTrainerMRGenAug_1epochs_10it

    env, folder, pre = planned
    _set_env(monkeypatch, env)
    plans = json.loads((pre / "nnUNetPlans.json").read_text(encoding="utf-8"))
    plans["continue_training"] = False
    dataset_json = json.loads((pre / "dataset.json").read_text(encoding="utf-8"))
    dataset_json["mrgen"]["augmentation"] = {"p": 1.0, "weights": {"class": 1.0}}
    trainer = nnUNetTrainerMRGenAug_1epochs_10it(plans, "2d", 0, dataset_json, device=torch.device("cpu"))
    trainer.initialize()
    assert trainer.num_epochs == 1 and trainer.num_iterations_per_epoch == 10
    gen_tr, gen_val = trainer.get_dataloaders()
    steps = gen_tr.data_loader.transforms.transforms
    kinds = [type(t) for t in steps]
    at = kinds.index(AppearanceTransform)
    assert kinds[at - 1] is SpatialTransform and steps[at].settings.p == 1.0
    assert AppearanceTransform not in [type(t) for t in gen_val.data_loader.transforms.transforms]
    batch = next(gen_tr)
    assert batch["data"].shape[0] == trainer.batch_size and torch.isfinite(batch["data"]).all()


def test_keep_variant_redraws_source_cases_only_in_nnunets_loader(planned, monkeypatch):
    """nnUNetTrainerMRGenAugKeep through nnU-Net's own data loader: with p = 1 every source sample is redrawn and
    no synthetic one is (the transform sees which case nnU-Net loaded)."""
    import torch

    from mrgen_nnunet.trainers.appearance_transform import AppearanceTransform
    from mrgen_nnunet.trainers.training_length import nnUNetTrainerMRGenAugKeep_2epochs_10it

    env, folder, pre = planned
    _set_env(monkeypatch, env)
    plans = json.loads((pre / "nnUNetPlans.json").read_text(encoding="utf-8"))
    dataset_json = json.loads((pre / "dataset.json").read_text(encoding="utf-8"))
    dataset_json["mrgen"]["augmentation"] = {"p": 1.0}
    trainer = nnUNetTrainerMRGenAugKeep_2epochs_10it({**plans, "continue_training": False}, "2d", 0, dataset_json,
                                                     device=torch.device("cpu"))
    assert trainer.appearance.p == 1.0 and trainer.appearance.p_target == 0.0
    trainer.initialize()
    gen_tr, _ = trainer.get_dataloaders()
    loader = gen_tr.data_loader
    transform = next(t for t in loader.transforms.transforms if isinstance(t, AppearanceTransform))
    seen = []
    redraw = transform.apply

    def spy(data_dict, **params):
        seen.append((transform.tracker.key, params["style"] is not None))
        return redraw(data_dict, **params)

    monkeypatch.setattr(transform, "apply", spy)
    for _ in range(3):
        loader.generate_train_batch()
    synthetic = set(dataset_json["mrgen"]["synthetic_cases"])
    assert {key in synthetic for key, _ in seen} == {True, False}  # both kinds were drawn
    assert all(redrawn == (key not in synthetic) for key, redrawn in seen)


def test_named_augmented_variant_sets_defaults_that_dataset_json_overrides(planned, monkeypatch):
    """`nnUNetTrainerMRGenAugSLA` draws only SLAug's styles by default; dataset.json `mrgen.augmentation` still wins
    key by key (here `p`), and the base trainer keeps its four-style default."""
    import torch

    from mrgen_nnunet.trainers.training_length import (
        nnUNetTrainerMRGenAug_1epochs_10it,
        nnUNetTrainerMRGenAugIPA_2epochs_10it,
        nnUNetTrainerMRGenAugSLA_2epochs_10it,
    )

    env, folder, pre = planned
    _set_env(monkeypatch, env)
    plans = json.loads((pre / "nnUNetPlans.json").read_text(encoding="utf-8"))

    def build(cls):  # nnU-Net pops `continue_training` from the plans it is given
        return cls({**plans, "continue_training": False}, "2d", 0, dataset_json, device=torch.device("cpu"))

    dataset_json = json.loads((pre / "dataset.json").read_text(encoding="utf-8"))
    dataset_json["mrgen"].pop("augmentation", None)
    sla = build(nnUNetTrainerMRGenAugSLA_2epochs_10it)
    assert sla.appearance.weights == {"global": 0.5, "class": 0.5} and sla.appearance.p == 0.8
    base = build(nnUNetTrainerMRGenAug_1epochs_10it)
    assert set(base.appearance.weights) == {"global", "class", "gin", "labelmap"}
    assert set(build(nnUNetTrainerMRGenAugIPA_2epochs_10it).appearance.weights) == {
        "global", "class", "gin", "labelmap", "ipa"}
    dataset_json["mrgen"]["augmentation"] = {"p": 0.3}
    sla = build(nnUNetTrainerMRGenAugSLA_2epochs_10it)
    assert sla.appearance.p == 0.3 and sla.appearance.weights == {"global": 0.5, "class": 0.5}


def test_a_checkpoint_write_killed_midway_leaves_the_previous_checkpoint(planned, monkeypatch, tmp_path):
    """nnU-Net's torch.save writes in place; ours goes to a hidden sibling and is renamed: a write that dies
    midway (here torch.save writes half the bytes, then the process 'dies') leaves the previous checkpoint intact
    and loadable, and no temporary file."""
    import torch

    env, folder, pre = planned
    _set_env(monkeypatch, env)
    trainer = _trainer(pre, json.loads((pre / "dataset.json").read_text(encoding="utf-8")))
    trainer.initialize()
    latest = tmp_path / "checkpoint_latest.pth"
    trainer.save_checkpoint(str(latest))
    before = latest.read_bytes()

    def saved_epoch() -> int:
        return torch.load(latest, map_location="cpu", weights_only=False)["current_epoch"]

    assert saved_epoch() == trainer.current_epoch + 1  # nnU-Net stores the epoch to resume at

    real_save = torch.save

    def dies_midway(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        Path(f).write_bytes(Path(f).read_bytes()[: len(before) // 2])  # what a kill during the write leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_midway)
    trainer.current_epoch += 1
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(str(latest))
    assert latest.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [latest.name]
    monkeypatch.setattr(torch, "save", real_save)
    trainer.save_checkpoint(str(latest))
    assert saved_epoch() == trainer.current_epoch + 1  # nnU-Net stores the epoch to resume at


def test_consistency_step_pairs_two_appearances_of_the_same_patches(planned, monkeypatch):
    """nnUNetTrainerMRGenAugCons.train_step: the second half of the batch the network sees is the first half in
    another appearance (same labels at every deep-supervision scale), and the loss it returns is finite."""
    import torch

    from mrgen_nnunet.trainers.augmented_trainer import symmetric_kl
    from mrgen_nnunet.trainers.training_length import nnUNetTrainerMRGenAugCons_2epochs_10it

    env, folder, pre = planned
    _set_env(monkeypatch, env)
    plans = json.loads((pre / "nnUNetPlans.json").read_text(encoding="utf-8"))
    plans["continue_training"] = False
    dataset_json = json.loads((pre / "dataset.json").read_text(encoding="utf-8"))
    trainer = nnUNetTrainerMRGenAugCons_2epochs_10it(plans, "2d", 0, dataset_json, device=torch.device("cpu"))
    trainer.initialize()
    gen_tr, _ = trainer.get_dataloaders()
    batch = next(gen_tr)
    seen = {}
    network_forward = trainer.network.forward

    def spy(x):
        seen["data"] = x.detach().clone()
        return network_forward(x)

    seg_loss = trainer.loss

    def loss_spy(output, target):
        seen["target"] = target if isinstance(target, list) else [target]
        return seg_loss(output, target)

    monkeypatch.setattr(trainer.network, "forward", spy)
    monkeypatch.setattr(trainer, "loss", loss_spy)
    half = batch["data"].shape[0] // 2
    out = trainer.train_step(batch)
    data = seen["data"]
    assert data.shape == batch["data"].shape and np.isfinite(out["loss"])
    assert torch.equal(data[:half], batch["data"][:half]) and not torch.allclose(data[half:2 * half], data[:half])
    assert len(seen["target"]) >= 1
    for t in seen["target"]:  # every deep-supervision scale: the first half's labels, twice
        assert t.shape[0] == data.shape[0] and torch.equal(t[half:2 * half], t[:half])
    logits = torch.randn(2, 4, 8, 8)
    assert symmetric_kl(logits, logits).item() == pytest.approx(0.0, abs=1e-7)
    assert symmetric_kl(logits, torch.randn(2, 4, 8, 8)).item() > 0
