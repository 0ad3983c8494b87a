"""pseudo_label with a real tiny nnU-Net model: writes a pseudo-labelled slice dataset, refuses test patients,
other sequences and an empty pool, is reproducible, and the trainer never validates on pseudo cases."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from mrgen_nnunet.data.io import read_image
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.pseudo_labels.rules import PseudoLabelRules
from mrgen_nnunet.pseudo_labels.run import pseudo_label
from mrgen_nnunet.trainers.nnunet_run import nnunet_environment, plan_and_preprocess, train

TRAINER = "nnUNetTrainerMRGen_2epochs_10it"
RELAXED = PseudoLabelRules(pixel_confidence=0.6, slice_confidence=0.5, min_foreground=0.01)


@pytest.fixture(scope="module")
def model(tmp_path_factory, tiny_dataset_writer):
    root = tmp_path_factory.mktemp("pseudo")
    env = nnunet_environment(root / "raw", root / "pre", root / "res", n_proc_da=0, n_proc=1,
                             base={**os.environ, "OMP_NUM_THREADS": "1"})
    folder = tiny_dataset_writer(root / "raw")
    plan_and_preprocess(501, env)
    fold = train(501, TRAINER, 0, env, device="cpu", progress=False)
    # the unlabelled "target scans": the tiny dataset's 3D test volumes, as an images-only folder
    images = root / "target_images"
    shutil.copytree(folder / "imagesTs", images)
    return fold.parent, images, root


def test_pseudo_label_writes_a_marked_dataset(model, tmp_path):
    model_dir, images, _ = model
    out = pseudo_label(model_dir, images, tmp_path, 601, "pseudo", rules=RELAXED)
    meta = json.loads((out / "dataset.json").read_text(encoding="utf-8"))
    assert meta["labels"] == {"background": 0, "square": 1, "ignore": 2}
    cases = meta["mrgen"]["pseudo_cases"]
    assert cases and cases == sorted(meta["mrgen"]["patients"]) and not meta["mrgen"]["synthetic_cases"]
    report = json.loads((out / "pseudo_labels.json").read_text(encoding="utf-8"))
    assert set(report["cases"]) == {"T000", "T001"} and report["cases"]["T000"]["slices"] == 4
    assert 0 < report["kept_fraction"] <= 1 and report["rules"]["slice_confidence"] == 0.5
    kept = [f"{c}_z{z:03d}" for c, r in report["cases"].items() for z in r["kept"]]
    assert sorted(kept) == cases
    volume, geometry = read_image(images / "T000_0000.nii.gz")
    first = next(c for c in cases if c.startswith("T000"))
    z = int(first[-3:])
    image, g2 = read_image(out / "imagesTr" / f"{first}_0000.nii.gz")
    label, _ = read_image(out / "labelsTr" / f"{first}.nii.gz")
    assert np.array_equal(image, volume[z]) and g2.spacing == geometry.spacing[:2]
    assert set(np.unique(label)) <= {0, 1, 2}

    again = pseudo_label(model_dir, images, tmp_path, 602, "pseudo", rules=RELAXED)  # same input, same dataset
    for f in sorted((out / "labelsTr").iterdir()):
        assert np.array_equal(read_image(f)[0], read_image(again / "labelsTr" / f.name)[0])


def test_test_patients_never_enter_the_pool(model, tmp_path):
    model_dir, images, _ = model
    with pytest.raises(MRGenError, match="excluded \\(test\\) patients"):
        pseudo_label(model_dir, images, tmp_path, 603, rules=RELAXED, exclude={"T001"})
    assert not list(tmp_path.glob("*Dataset603*"))


def test_empty_pool_and_other_sequence_are_one_line_errors(model, tmp_path):
    model_dir, images, root = model
    with pytest.raises(MRGenError, match="no slice passed"):
        pseudo_label(model_dir, images, tmp_path, 604, rules=PseudoLabelRules(slice_confidence=1.0))
    other = tmp_path / "Dataset777_Other"
    shutil.copytree(root / "raw" / "Dataset501_Tiny", other)
    meta = json.loads((other / "dataset.json").read_text(encoding="utf-8"))
    meta["channel_names"], meta["mrgen"]["modality"] = {"0": "T2"}, "T2 SPIR Abdomen MRI"
    (other / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(MRGenError, match="not LGE"):
        pseudo_label(model_dir, other, tmp_path, 605, rules=RELAXED, sequence="LGE")
    assert not list(tmp_path.glob("*Dataset60[45]*"))


def test_splits_never_validate_on_pseudo_cases():
    from mrgen_nnunet.trainers.splits import patient_splits

    cases = [f"P{p}_z0" for p in range(4)] + ["T0_z1", "T1_z2"]
    patients = {c: c.split("_")[0] for c in cases}
    splits = patient_splits(cases, patients, {"T0_z1", "T1_z2"})
    assert all(not {"T0_z1", "T1_z2"} & set(s["val"]) for s in splits)
    assert all({"T0_z1", "T1_z2"} <= set(s["train"]) for s in splits)


def test_cli_pseudo_label(model, tmp_path, capsys):
    from mrgen_nnunet.cli.main import main

    model_dir, images, _ = model
    args = ["pseudo-label", "--model", str(model_dir), "--images", str(images), "--out-dataset", "606",
            "--out-raw", str(tmp_path), "--slice-confidence", "0.5", "--pixel-confidence", "0.6",
            "--min-foreground", "0.01", "--device", "cpu"]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out and list(tmp_path.glob("Dataset606_pseudo/labelsTr/*.nii.gz"))
    assert main(args) == 1  # the dataset exists: refused without --force
    assert "--force" in capsys.readouterr().err
    assert main([*args[:-2], "--require", "circle", "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown structure 'circle'" in err[0]


def test_cli_pseudo_label_takes_an_images_only_dataset(model, tmp_path, capsys):
    """The target scans as `convert nifti` writes them without labels (imagesTs, `mrgen.images_only`) are a valid
    --images: every volume of imagesTs is predicted, patients come from the dataset's `mrgen` key."""
    from mrgen_nnunet.cli.main import main

    model_dir, images, _ = model
    raw = tmp_path / "raw"
    assert main(["convert", "nifti", str(images), "--out-raw", str(raw), "--dataset-id", "202", "--sequence",
                 "LGE", "--pattern", "{id}_0000.nii.gz"]) == 0
    (dataset,) = raw.glob("Dataset202_*")
    assert not (dataset / "imagesTr").exists() and len(list((dataset / "imagesTs").iterdir())) == 2
    capsys.readouterr()
    assert main(["pseudo-label", "--model", str(model_dir), "--images", str(dataset), "--out-dataset", "607",
                 "--out-raw", str(raw), "--sequence", "LGE", "--slice-confidence", "0.5", "--pixel-confidence",
                 "0.6", "--min-foreground", "0.01", "--device", "cpu"]) == 0, capsys.readouterr().err
    out = raw / "Dataset607_pseudo"
    report = json.loads((out / "pseudo_labels.json").read_text(encoding="utf-8"))
    patients = json.loads((dataset / "dataset.json").read_text(encoding="utf-8"))["mrgen"]["patients"]
    assert set(report["cases"]) == set(patients) and all(r["slices"] == 4 for r in report["cases"].values())
    assert {r["patient"] for r in report["cases"].values()} == set(patients.values())
    # the test patients of the images-only dataset are refused like any others
    assert main(["pseudo-label", "--model", str(model_dir), "--images", str(dataset), "--out-dataset", "608",
                 "--out-raw", str(raw), "--exclude", sorted(patients.values())[0], "--device", "cpu"]) == 1
    assert "excluded (test) patients" in capsys.readouterr().err


def test_second_round_from_a_model_trained_with_an_ignore_label(model, tmp_path):
    """A self-training round's model was trained on pseudo-labels, so its dataset.json carries nnU-Net's `ignore`
    label (not an output channel). Pseudo-labelling with it again gives the same label map plus one new `ignore`
    value, not an ignore label counted as a structure (the benchmark's `selftrain2` row failed on that)."""
    model_dir, images, _ = model
    second = tmp_path / "model" / model_dir.name
    shutil.copytree(model_dir, second)
    meta = json.loads((second / "dataset.json").read_text(encoding="utf-8"))
    meta["labels"]["ignore"] = max(meta["labels"].values()) + 1  # as a model trained on pseudo-labels has
    (second / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    first = pseudo_label(model_dir, images, tmp_path / "a", 611, "pseudo", rules=RELAXED)
    again = pseudo_label(second, images, tmp_path / "b", 612, "pseudo", rules=RELAXED)
    labels = json.loads((again / "dataset.json").read_text(encoding="utf-8"))["labels"]
    assert labels == {"background": 0, "square": 1, "ignore": 2}
    for f in sorted((first / "labelsTr").iterdir()):  # same network, same pseudo-labels
        assert np.array_equal(read_image(f)[0], read_image(again / "labelsTr" / f.name)[0])


def _perturbed_copy(model_dir, to, fold=0, scale=0.3, seed=1, **state_changes):
    """A copy of `model_dir` whose fold_`fold` weights have noise added: another model of the same label map."""
    import torch

    copy = to / model_dir.name
    if not copy.exists():
        shutil.copytree(model_dir, copy)
    ckpt = model_dir / "fold_0" / "checkpoint_final.pth"
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    generator = torch.Generator().manual_seed(seed)
    state["network_weights"] = {k: v + scale * v.std().nan_to_num() * torch.randn(v.shape, generator=generator)
                                if v.is_floating_point() and v.numel() > 1 else v
                                for k, v in state["network_weights"].items()}
    state.update(state_changes)
    (copy / f"fold_{fold}").mkdir(parents=True, exist_ok=True)
    torch.save(state, copy / f"fold_{fold}" / "checkpoint_final.pth")
    return copy


def test_an_ensemble_labels_with_the_mean_of_its_models_probabilities(model, tmp_path):
    """Two models: every slice's decision and label map are those of the averaged softmax of the two, which is
    not what either model alone gives."""
    from mrgen_nnunet.filtering.nnunet_filter import NnUNetFilter
    from mrgen_nnunet.pseudo_labels.rules import decide_slice

    model_dir, images, _ = model
    other = _perturbed_copy(model_dir, tmp_path / "other")
    out = pseudo_label([model_dir, other], images, tmp_path, 621, "pseudo", rules=RELAXED)
    report = json.loads((out / "pseudo_labels.json").read_text(encoding="utf-8"))
    assert report["models"] == [str(model_dir.resolve()), str(other.resolve())]
    volume, geometry = read_image(images / "T000_0000.nii.gz")
    per_model = []
    for folder in (model_dir, other):
        predictor = NnUNetFilter.from_folder(folder).predictor
        predictor.use_mirroring = bool(predictor.allowed_mirroring_axes)
        per_model.append(np.asarray(predictor.predict_single_npy_array(
            volume[None].astype(np.float32), {"spacing": list(reversed(geometry.spacing))},
            save_or_return_probabilities=True)[1]))
    assert not np.allclose(per_model[0], per_model[1], atol=1e-3)  # the two models do disagree
    mean = np.mean(per_model, axis=0)
    decisions = [decide_slice(mean[:, z], RELAXED, 2) for z in range(volume.shape[0])]
    assert report["cases"]["T000"]["kept"] == [z for z, d in enumerate(decisions) if d.keep]
    for z, d in enumerate(decisions):
        if d.keep:
            assert np.array_equal(read_image(out / "labelsTr" / f"T000_z{z:03d}.nii.gz")[0], d.label)


def test_several_folds_average_their_logits_and_must_share_a_trainer(model, tmp_path):
    from mrgen_nnunet.filtering.nnunet_filter import NnUNetFilter

    model_dir, images, _ = model
    folder = _perturbed_copy(model_dir, tmp_path, fold=1)
    both = NnUNetFilter.from_folder(folder, fold=(0, 1))
    assert len(both.predictor.list_of_parameters) == 2 and both.id.endswith("fold_0+1")
    volume, geometry = read_image(images / "T000_0000.nii.gz")
    logits = []
    for f in ((0,), (1,), (0, 1)):
        predictor = NnUNetFilter.from_folder(folder, fold=f).predictor
        logits.append(predictor.predict_logits_from_preprocessed_data(
            __import__("torch").from_numpy(volume[None, :1].astype(np.float32))).numpy())
    assert np.allclose(logits[2], (logits[0] + logits[1]) / 2, atol=1e-4)
    _perturbed_copy(model_dir, tmp_path, fold=2, trainer_name="nnUNetTrainer")
    with pytest.raises(MRGenError, match="fold 2 was trained as"):
        NnUNetFilter.from_folder(folder, fold=(0, 2))


def test_ensemble_of_models_with_other_labels_is_a_one_line_error(model, tmp_path, capsys):
    from mrgen_nnunet.cli.main import main

    model_dir, images, _ = model
    other = _perturbed_copy(model_dir, tmp_path / "other")
    meta = json.loads((other / "dataset.json").read_text(encoding="utf-8"))
    meta["labels"] = {"background": 0, "circle": 1}
    (other / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    args = ["pseudo-label", "--model", str(model_dir), "--model", str(other), "--images", str(images),
            "--out-dataset", "622", "--out-raw", str(tmp_path), "--device", "cpu"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "differ from" in err[0] and str(other) in err[0]
    assert not list(tmp_path.glob("Dataset622*"))
    assert main([*args[:3], "--images", str(images), "--out-dataset", "622", "--out-raw", str(tmp_path),
                 "--fold", ",", "--device", "cpu"]) == 1
    assert "no fold" in capsys.readouterr().err
