"""nnU-Net filter wiring with a tiny model trained by the real nnU-Net CLIs (1 epoch × 5 iterations)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mrgen_fixtures import ring

from mrgen_nnunet.data.io import Geometry, write_image
from mrgen_nnunet.data.nnunet_raw import write_dataset_json
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.filtering.nnunet_filter import NnUNetFilter

LABELS = {"background": 0, "ring": 1, "disc": 2}
pytestmark = pytest.mark.slow  # plan + train with the real CLIs: 1-3 min on the shared 2-core machine

TRAINER = '''
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer


class nnUNetTrainer_FilterTest(nnUNetTrainer):
    def __init__(self, plans, configuration, fold, dataset_json, device=torch.device("cuda")):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = 1
        self.num_iterations_per_epoch = 5
        self.num_val_iterations_per_epoch = 1
'''


def phantom(k: int, size: int = 32):
    label = ring((size, size), k % 3, -(k % 4))
    image = (100 + 400 * (label == 2) + 200 * (label == 1)).astype(np.float32)
    return image + np.random.default_rng(k).normal(0, 10, image.shape).astype(np.float32), label


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("nnunet")
    env = dict(os.environ, nnUNet_raw=str(root / "raw"), nnUNet_preprocessed=str(root / "pre"),
               nnUNet_results=str(root / "res"), nnUNet_n_proc_DA="0", nnUNet_def_n_proc="1",
               nnUNet_extTrainer=str(root / "ext"), OMP_NUM_THREADS="1")
    (root / "ext").mkdir()
    (root / "ext" / "syn_filter_test_trainer.py").write_text(TRAINER)
    folder = root / "raw" / "Dataset990_FilterTest"
    for k in range(10):
        image, label = phantom(k)
        geom = Geometry.default(2, (1.0, 1.0))
        write_image(image, geom, folder / "imagesTr" / f"c{k:02d}_0000.nii.gz")
        write_image(label, geom, folder / "labelsTr" / f"c{k:02d}.nii.gz")
    write_dataset_json(folder, LABELS, {"0": "MR"}, 10)
    bin_dir = Path(sys.executable).parent
    # planning calls torch.set_num_threads(nnUNet_n_proc_DA), so 0 only for training (no DA worker processes)
    for cmd, n_proc_da in (([str(bin_dir / "nnUNetv2_plan_and_preprocess"), "-d", "990", "-c", "2d", "-np", "1"], "1"),
                           ([str(bin_dir / "nnUNetv2_train"), "990", "2d", "0", "-tr", "nnUNetTrainer_FilterTest",
                             "-device", "cpu"], "0")):
        done = subprocess.run(cmd, env=dict(env, nnUNet_n_proc_DA=n_proc_da), capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return root / "res" / "Dataset990_FilterTest" / "nnUNetTrainer_FilterTest__nnUNetPlans__2d"


@pytest.fixture
def ext_trainer(model_folder, monkeypatch):
    """nnUNetPredictor finds the model's trainer class (for its network) through nnUNet_extTrainer."""
    monkeypatch.setenv("nnUNet_extTrainer", str(model_folder.parents[2] / "ext"))


def test_nnunet_filter_scores_and_flags_unrequested(model_folder, ext_trainer):
    filt = NnUNetFilter.from_folder(model_folder)
    assert filt.id.startswith("nnunet:Dataset990_FilterTest/") and filt.labels == LABELS
    images, maps = [], []
    for k in (20, 21):
        image, label = phantom(k)
        images.append((image - image.min()) / (image.max() - image.min()) * 2 - 1)
        maps.append(label)
    maps[1] = np.where(maps[1] == 2, 0, maps[1]).astype(np.uint8)  # mask without the disc
    out = filt.score(np.stack(images).astype(np.float32), np.stack(maps), LABELS, [1.0, 1.0])
    assert len(out) == 2
    assert set(out[0].organs) == {"ring", "disc"} and set(out[1].organs) == {"ring"}
    for c in out:
        assert c.prediction.shape == (32, 32) and set(np.unique(c.prediction)) <= {0, 1, 2}
        for s in c.organs.values():
            assert 0.0 <= s.iou <= 1.0 and 0.0 <= s.conf <= 1.0
    # what the model predicts for a label the mask lacks is reported (and only then) as unrequested
    disc_pred = float((out[1].prediction == 2).mean())
    assert ("disc" in out[1].unrequested) == (disc_pred >= 0.002)
    assert out[0].unrequested == {}


def test_nnunet_filter_bad_model_and_labels(model_folder, ext_trainer, tmp_path):
    with pytest.raises(MRGenError, match="not a trained nnU-Net model folder"):
        NnUNetFilter.from_folder(tmp_path)
    filt = NnUNetFilter.from_folder(model_folder)
    filt.check_labels(dict(LABELS))
    with pytest.raises(MRGenError, match="differ from the source labels"):
        filt.check_labels({"background": 0, "liver": 1})
