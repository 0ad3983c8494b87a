"""Randomised-contrast baselines and slice-dataset writing/merging."""

import json

import numpy as np
import pytest

from mrgen_nnunet.augmentation.appearance import intensity_remap, label_map_image
from mrgen_nnunet.benchmark.augment import augment_slice_dataset
from mrgen_nnunet.data.io import Geometry, read_image
from mrgen_nnunet.data.nnunet_raw import list_cases
from mrgen_nnunet.data.slice_datasets import SliceCase, merge_slice_datasets, write_slice_dataset
from mrgen_nnunet.demo.phantom import PhantomSpec, render_volume
from mrgen_nnunet.errors import MRGenError

META = {"channel_names": {"0": "bSSFP"}, "labels": {"background": 0, "myocardium": 1, "left ventricle": 2,
                                                    "right ventricle": 3},
        "mrgen": {"modality": "bSSFP Cardiac MRI"}}


def _slices(n=2):
    rng = np.random.default_rng(0)
    image, label = render_volume(PhantomSpec(n_slices=n, size=32), "bSSFP", rng)
    return image, label


def test_remap_keeps_anatomy_and_scrambles_contrast():
    image, label = _slices()
    outs = [intensity_remap(image[0], np.random.default_rng(s)) for s in range(6)]
    for out in outs:
        assert out.shape == image[0].shape and out.dtype == np.float32
        assert 0 <= out.min() and out.max() <= 1
    # contrast between blood (2) and myocardium (1) changes sign across draws: the curve is non-monotonic
    diffs = [o[label[0] == 2].mean() - o[label[0] == 1].mean() for o in outs]
    assert min(diffs) < 0 < max(diffs)


def test_label_map_image_follows_labels_not_source_intensities():
    image, label = _slices()
    out = label_map_image(label[0], image[0], np.random.default_rng(1), blur_sigma=(0.0, 0.0), noise=(0, 0),
                          bias=0.0)
    for v in (1, 2, 3):  # each structure has its own narrow intensity distribution
        assert out[label[0] == v].std() < 0.1
    other = label_map_image(label[0], image[0], np.random.default_rng(2))
    assert not np.allclose(out, other)


def _source(tmp_path):
    image, label = _slices(2)
    geom = Geometry.default(2, (2.5, 2.5))
    cases = [SliceCase(f"bSSFP001_z{k:03d}", "bSSFP/001", image[k], label[k], geom) for k in range(2)]
    return write_slice_dataset(tmp_path, 101, "src", cases, META, synthetic=False)


def test_augment_and_merge(tmp_path):
    src = _source(tmp_path)
    aug = augment_slice_dataset(src, tmp_path, 102, "remap", "remap", copies=3, seed=0)
    assert len(list_cases(aug)) == 6
    lab0, _ = read_image(aug / "labelsTr" / "bSSFP001_z000_remap1.nii.gz")
    assert np.array_equal(lab0, read_image(src / "labelsTr" / "bSSFP001_z000.nii.gz")[0])
    merged = merge_slice_datasets(tmp_path, 103, "mix", [src, aug], ratio=1.0)
    meta = json.loads((merged / "dataset.json").read_text(encoding="utf-8"))
    assert meta["numTraining"] == 8 and meta["labels"] == META["labels"]
    assert meta["mrgen"]["real_to_synthetic_ratio"] == 1.0
    assert len(meta["mrgen"]["synthetic_cases"]) == 6
    assert set(meta["mrgen"]["patients"].values()) == {"bSSFP/001"}
    with pytest.raises(MRGenError, match="already used"):
        merge_slice_datasets(tmp_path, 103, "mix", [src, aug], ratio=1.0)
    with pytest.raises(MRGenError, match="two datasets"):
        merge_slice_datasets(tmp_path, 104, "dup", [src, src], ratio=None)
    assert not list(tmp_path.glob("*Dataset104*"))


def _images_only(tmp_path, dataset_id):
    """A target dataset as `convert nifti` writes it without labels: imagesTs, `mrgen.images_only`."""
    from mrgen_nnunet.cli.main import main
    from mrgen_nnunet.data.io import write_image
    from mrgen_nnunet.data.nnunet_raw import find_dataset

    image, _ = _slices(2)
    write_image(image, Geometry.default(3, (2.5, 2.5, 5.0)), tmp_path / "scans" / "a.nii.gz")
    assert main(["convert", "nifti", str(tmp_path / "scans"), "--out-raw", str(tmp_path), "--dataset-id",
                 str(dataset_id), "--sequence", "LGE", "--pattern", "{id}.nii.gz", "--as-slices"]) == 0
    return find_dataset(tmp_path, dataset_id)


def test_label_less_parts_never_make_a_training_set(tmp_path):
    """An images-only dataset, an imagesTr case without its label and a label-less slice are refused with one
    line naming the file, and nothing is written (a merge used to skip an images-only part silently)."""
    src = _source(tmp_path)
    target = _images_only(tmp_path, 102)
    with pytest.raises(MRGenError, match=r"merge part Dataset102_\S+ is an images-only dataset .*dataset\.json"):
        merge_slice_datasets(tmp_path, 103, "mix", [src, target], ratio=None)
    (src / "labelsTr" / "bSSFP001_z001.nii.gz").unlink()
    with pytest.raises(MRGenError, match=r"1 case\(s\) have no label, e.g. 'bSSFP001_z001'.*bSSFP001_z001\.nii\.gz"):
        merge_slice_datasets(tmp_path, 103, "mix", [src], ratio=None)
    image, _ = _slices(1)
    with pytest.raises(MRGenError, match="case x has no label"):
        write_slice_dataset(tmp_path, 104, "nolabel", [SliceCase("x", "p", image[0], None, Geometry.default(2))],
                            META)
    assert not list(tmp_path.glob("*Dataset103*")) and not list(tmp_path.glob("*Dataset104*"))


def test_benchmark_row_refuses_an_images_only_part(tmp_path):
    from pathlib import Path

    from mrgen_nnunet.benchmark.build import Build as _Build
    from mrgen_nnunet.benchmark.config import load_config
    from mrgen_nnunet.benchmark.ledger import Ledger
    from mrgen_nnunet.benchmark.training import Progress

    target = _images_only(tmp_path, 102)
    cfg = load_config(Path(__file__).resolve().parents[2] / "benchmarks" / "configs" / "mscmrseg_cpu.toml")
    env = {"nnUNet_raw": str(tmp_path), "nnUNet_results": str(tmp_path / "res")}
    build = _Build(cfg, env, Ledger(tmp_path / "ledger.json", 700, tmp_path), Progress())
    with pytest.raises(MRGenError, match="part 'target' of row 'oracle' is an images-only dataset"):
        build.row("oracle", 0, {"target": target}, {"target": "target"})
