"""Issue 18 "done when": a user's own, non-cardiac data in a nested layout, a labelled sequence (T1c) and an
unlabelled one (FLAIR), goes through the README's commands — convert both by pattern, train the (tiny) generator,
synthesise FLAIR slices from the T1c labels, train a 2-epoch nnU-Net on them and predict the unlabelled FLAIR
volumes — with no file written by hand and no code change for the new anatomy."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mrgen_nnunet.data.io import read_image
from mrgen_nnunet.data.records import read_index

TRAINER = "nnUNetTrainerMRGen_2epochs_10it"


def brain_phantom(root: Path, cases: dict[str, str], shape=(5, 32, 32)) -> None:
    """`<split>/<case>/{t1c,flair,seg}.nii.gz`: an elliptic 'brain', a tumour (1) with an oedema ring (2). The
    tumour enhances on T1c, the oedema is bright on FLAIR; z-scored intensities (negatives) on an oblique grid."""
    rng = np.random.default_rng(18)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    for n, (case, split) in enumerate(cases.items()):
        cy, cx = 14 + n % 3, 15 + n % 2
        brain = ((yy - 16) / 13.0) ** 2 + ((xx - 16) / 11.0) ** 2 < 1
        r = np.hypot(yy - cy, xx - cx) + 2.0 * np.abs(zz - 2)
        seg = np.where(r < 3.5, 1, np.where(r < 7, 2, 0)).astype(np.uint8) * brain
        t1c = 0.6 * brain + 1.5 * (seg == 1) + 0.1 * (seg == 2) + 0.1 * rng.standard_normal(shape)
        flair = 0.5 * brain + 0.2 * (seg == 1) + 1.4 * (seg == 2) + 0.1 * rng.standard_normal(shape)
        folder = root / split / case
        folder.mkdir(parents=True)
        for name, array in (("t1c", t1c), ("flair", flair), ("seg", seg)):
            values = array if name == "seg" else (array - array.mean()) / array.std()  # z-scored, negatives
            img = sitk.GetImageFromArray(values.astype(np.uint8 if name == "seg" else np.float32))
            img.SetSpacing((0.9, 0.9, 4.0))
            img.SetOrigin((-20.0, 12.0, 3.0 * n))
            img.SetDirection((0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
            sitk.WriteImage(img, str(folder / f"{name}.nii.gz"))


def test_labelled_t1c_and_unlabelled_flair_end_to_end(tmp_path, cli):
    from mrgen_nnunet.trainers.nnunet_run import nnunet_environment, plan_and_preprocess, predict, train

    data, raw, runs = tmp_path / "brain", tmp_path / "raw", tmp_path / "runs"
    brain_phantom(data, {"p1": "train", "p2": "train", "p3": "train", "p4": "test"})

    # 1. the labelled sequence and the unlabelled one, by pattern (indices side by side: relative paths hold)
    rc, err = cli("convert", "nifti", data, "--out-raw", raw, "--dataset-id", 201, "--sequence", "T1c",
                  "--labels", "tumour=1,oedema=2", "--pattern", "{split}/{id}/t1c.nii.gz",
                  "--label-pattern", "{split}/{id}/seg.nii.gz", "--as-slices", "--index", runs / "t1c.jsonl")
    assert rc == 0, err
    rc, err = cli("convert", "nifti", data, "--out-raw", raw, "--dataset-id", 202, "--sequence", "FLAIR",
                  "--pattern", "{split}/{id}/flair.nii.gz", "--index", runs / "flair.jsonl")
    assert rc == 0, err
    flair = raw / "Dataset202_NIfTI_FLAIR" / "imagesTs"
    assert sorted(p.name for p in flair.iterdir()) == [f"FLAIRp{k}_0000.nii.gz" for k in (1, 2, 3, 4)]
    (runs / "generator.jsonl").write_text((runs / "t1c.jsonl").read_text() + (runs / "flair.jsonl").read_text())
    records = read_index(runs / "generator.jsonl")
    assert {r.modality for r in records} == {"T1 C+ Brain MRI", "FLAIR Brain MRI"}
    assert all((r.label_file is None) == (r.modality == "FLAIR Brain MRI") for r in records)

    # 2. the generator (tiny, 2 steps per stage at 32 px) and 3. synthetic FLAIR slices from the T1c labels
    rc, err = cli("train", "all", "--index", runs / "generator.jsonl", "--out", runs / "gen", "--target", "FLAIR",
                  "--steps", 2, "--resolution", 32, "--batch-size", 2, "--seed", 0, "--cpu")
    assert rc == 0, err
    config = json.loads((runs / "gen" / "mrgen_generator.json").read_text(encoding="utf-8"))
    assert config["labels"] == {"background": 0, "tumour": 1, "oedema": 2}
    rc, err = cli("synthesize", "--target", "FLAIR", "--source", runs / "t1c.jsonl", "--generator", runs / "gen",
                  "--out-raw", raw, "--out-dataset", 203, "--name", "FLAIRsyn", "--samples-per-mask", 1,
                  "--max-tries", 1, "--batch-size", 4, "--steps", 2, "--filter", "none", "--device", "cpu")
    assert rc == 0, err
    syn = raw / "Dataset203_FLAIRsyn"
    meta = json.loads((syn / "dataset.json").read_text(encoding="utf-8"))
    assert meta["labels"] == {"background": 0, "tumour": 1, "oedema": 2} and meta["numTraining"] >= 8
    assert "FLAIR Brain MRI" in meta["mrgen"]["modality"]

    # 4. a 2-epoch nnU-Net on the synthetic FLAIR slices predicts the real, unlabelled FLAIR volumes
    env = nnunet_environment(raw, tmp_path / "pre", tmp_path / "res", n_proc_da=0, n_proc=1,
                             base={**os.environ, "OMP_NUM_THREADS": "1"})
    plan_and_preprocess(203, env)
    train(203, TRAINER, 0, env, progress=False)
    pred = predict(203, flair, tmp_path / "pred", TRAINER, env)
    for k in (1, 2, 3, 4):
        seg, geo = read_image(pred / f"FLAIRp{k}.nii.gz")
        img, img_geo = read_image(flair / f"FLAIRp{k}_0000.nii.gz")
        assert seg.shape == img.shape == (5, 32, 32) and set(np.unique(seg)) <= {0, 1, 2}
        assert np.allclose(geo.spacing, img_geo.spacing) and np.allclose(geo.direction, img_geo.direction)
        assert np.allclose(geo.origin, img_geo.origin)
