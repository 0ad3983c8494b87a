"""evaluate-generator / evaluate-autoencoder with real torchmetrics, torch-fidelity Inception-v3, torchvision
ResNet-50, open_clip and diffusers AutoencoderKL — random-initialised and tiny, on synthetic slices."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mrgen_nnunet.cli.main import main
from mrgen_nnunet.data.io import Geometry, write_image
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.evaluation.generator_features import (
    InceptionFeatures,
    build_feature_extractor,
    load_biomedclip,
    load_state_dict_file,
    random_inception_state_dict,
)
from mrgen_nnunet.evaluation.generator_inputs import load_eval_slices
from mrgen_nnunet.evaluation.generator_metrics import (
    clip_similarity,
    frechet_distance,
    intensity_statistics,
    reconstruction_metrics,
)

SIZE = 32


def _phantom(rng: np.random.Generator, contrast: float) -> tuple[np.ndarray, np.ndarray]:
    """A (40, 36) slice: background noise, a disc (label 1) and a ring (label 2) whose brightness is `contrast`."""
    yy, xx = np.mgrid[:40, :36]
    r = np.hypot(yy - 20 + rng.integers(-3, 4), xx - 18 + rng.integers(-3, 4))
    label = np.zeros((40, 36), np.uint8)
    label[r < 6] = 1
    label[(r >= 6) & (r < 10)] = 2
    image = rng.normal(100, 20, (40, 36))
    image[label == 1] += 300
    image[label == 2] += 300 * contrast
    return image.astype(np.float32), label


def _write_folder(folder, n_volumes: int, contrast: float, seed: int) -> None:
    """MS-CMRSeg-style image_K/label_K 3D volumes, 3 slices each (the last one without foreground)."""
    rng = np.random.default_rng(seed)
    geometry = Geometry.default(3, (1.25, 1.25, 5.0))
    for k in range(1, n_volumes + 1):
        pairs = [_phantom(rng, contrast) for _ in range(2)]
        image = np.stack([p[0] for p in pairs] + [rng.normal(100, 20, (40, 36)).astype(np.float32)])
        label = np.stack([p[1] for p in pairs] + [np.zeros((40, 36), np.uint8)])
        write_image(image, geometry, folder / f"image_{k}.nii.gz")
        write_image(label, geometry, folder / f"label_{k}.nii.gz")


def _write_dataset(folder, n_cases: int, contrast: float, seed: int) -> None:
    """A 2D nnU-Net raw slice dataset (imagesTr/labelsTr + dataset.json)."""
    rng = np.random.default_rng(seed)
    geometry = Geometry.default(2, (1.25, 1.25))
    for k in range(n_cases):
        image, label = _phantom(rng, contrast)
        write_image(image, geometry, folder / "imagesTr" / f"syn_{k:03d}_0000.nii.gz")
        write_image(label, geometry, folder / "labelsTr" / f"syn_{k:03d}.nii.gz")
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "LGE"}, "labels": {"background": 0, "myocardium": 1, "ring": 2},
        "numTraining": n_cases, "file_ending": ".nii.gz"}))


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    _write_folder(root / "real", 4, contrast=1.0, seed=0)
    _write_dataset(root / "syn_same", 8, contrast=1.0, seed=1)
    _write_dataset(root / "syn_dark", 8, contrast=0.2, seed=2)
    return root


def test_load_slice_set_folder_and_dataset(sets):
    real = load_eval_slices(sets / "real", SIZE)
    assert len(real.slices) == 8  # 4 volumes x 2 foreground slices; the empty third slice is dropped
    assert real.slices[0].name == "image_1_z000"
    assert real.labels == {"background": 0, "label_1": 1, "label_2": 2}
    images = real.images()
    assert images.shape == (8, SIZE, SIZE) and images.dtype == np.float32
    assert images.min() == pytest.approx(-1.0) and images.max() <= 1.0
    syn = load_eval_slices(sets / "syn_dark", SIZE, max_slices=5)
    assert len(syn.slices) == 5 and syn.has_labels
    assert syn.labels == {"background": 0, "myocardium": 1, "ring": 2}
    assert set(np.unique(syn.slices[0].label)) == {0, 1, 2}


def test_intensity_statistics_see_the_darker_ring(sets):
    real = load_eval_slices(sets / "real", SIZE)
    dark = load_eval_slices(sets / "syn_dark", SIZE)
    same = load_eval_slices(sets / "syn_same", SIZE)
    shifted, matched = intensity_statistics(real, dark), intensity_statistics(real, same)
    assert set(shifted) == {"background", "myocardium", "ring"}  # generic label_<v> names take dataset.json's
    assert shifted["ring"]["mean_difference"] < -0.4  # ring at 0.2x contrast is much darker
    assert abs(matched["ring"]["mean_difference"]) < 0.1
    assert shifted["ring"]["wasserstein"] > 5 * matched["ring"]["wasserstein"]
    assert abs(shifted["myocardium"]["mean_difference"]) < 0.1  # the disc is unchanged
    assert len(shifted["myocardium"]["real"]["histogram"]) == 64


@pytest.mark.parametrize(("kind", "dims"), [
    ("inception", 192),
    pytest.param("inception", 2048, marks=pytest.mark.slow),  # 2048² eigen-decompositions: ~1 min on 2 cores
    pytest.param("radimagenet", 2048, marks=pytest.mark.slow),
])
def test_fid_identical_is_zero_and_shifted_is_larger(sets, kind, dims):
    real = load_eval_slices(sets / "real", SIZE).images()
    dark = load_eval_slices(sets / "syn_dark", SIZE).images()
    extractor, random_weights = build_feature_extractor(kind, None, seed=0, dims=dims)
    assert random_weights and extractor.num_features == dims
    same = frechet_distance(real, real, extractor, batch_size=8)
    shifted = frechet_distance(real, dark, extractor, batch_size=8)
    assert abs(same) < 1e-3 * shifted
    assert shifted > 0.1


def test_weights_files_load_safely(tmp_path):
    torch.manual_seed(0)
    state = random_inception_state_dict()
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "inception.safetensors")
    torch.save({"state_dict": state}, tmp_path / "inception.pth")
    x = torch.rand(2, 1, SIZE, SIZE) * 2 - 1
    a, random_a = build_feature_extractor("inception", tmp_path / "inception.safetensors")
    b, random_b = build_feature_extractor("inception", tmp_path / "inception.pth")
    assert not random_a and not random_b
    torch.testing.assert_close(a(x), b(x))
    assert not torch.allclose(a(x), InceptionFeatures(None).eval()(x))  # the file's weights, not a fresh init

    from torchvision.models import resnet50

    net = resnet50(weights=None).eval()  # RadImageNet ports: "backbone." prefix, classifier head included
    torch.save({f"backbone.{k}": v for k, v in net.state_dict().items()}, tmp_path / "radimagenet.pt")
    r, random_r = build_feature_extractor("radimagenet", tmp_path / "radimagenet.pt")
    assert not random_r
    net.fc = torch.nn.Identity()
    expected = net((torch.nn.functional.interpolate(((x + 1) / 2).repeat(1, 3, 1, 1), size=(224, 224),
                                                    mode="bilinear", antialias=True) - r.mean) / r.std)
    torch.testing.assert_close(r(x), expected)

    torch.save({"x": Geometry.default(2)}, tmp_path / "evil.pth")  # a pickled object: refused by weights_only
    with pytest.raises(MRGenError, match="refused to unpickle mrgen_nnunet.data.io.Geometry"):
        load_state_dict_file(tmp_path / "evil.pth")
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "wrong.pth")
    with pytest.raises(MRGenError, match="do not fit ResNet-50"):
        build_feature_extractor("radimagenet", tmp_path / "wrong.pth")
    with pytest.raises(MRGenError, match="do not fit Inception"):
        build_feature_extractor("inception", tmp_path / "wrong.pth")


def _tiny_open_clip_folder(folder):
    """A real open_clip model folder (config + safetensors), tiny ViT + text transformer, random weights."""
    import open_clip
    from safetensors.torch import save_file

    cfg = {"embed_dim": 16,
           "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    torch.manual_seed(0)
    model = open_clip.CLIP(**cfg)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors")


def test_biomedclip_loading_and_similarity(sets, tmp_path):
    _tiny_open_clip_folder(tmp_path / "clip")
    model, tokenizer = load_biomedclip(str(tmp_path / "clip"))
    real = load_eval_slices(sets / "real", SIZE).images()
    dark = load_eval_slices(sets / "syn_dark", SIZE).images()
    self_sim = clip_similarity(model, tokenizer, real, real, "LGE Cardiac MRI, Heart")
    cross = clip_similarity(model, tokenizer, real, dark, "LGE Cardiac MRI, Heart")
    assert -1 <= cross["clip_image"] <= 1 and -1 <= cross["clip_text"] <= 1
    assert self_sim["clip_image"] > cross["clip_image"]
    extractor, random_weights = build_feature_extractor("biomedclip", tmp_path / "clip")
    assert not random_weights and extractor(torch.zeros(3, 1, SIZE, SIZE)).shape == (3, 16)
    with pytest.raises(MRGenError, match="not an open_clip model folder"):
        load_biomedclip(str(tmp_path))


def test_cli_evaluate_generator_writes_reports(sets, tmp_path, capsys):
    out = tmp_path / "report"
    _tiny_open_clip_folder(tmp_path / "clip")
    code = main(["evaluate-generator", "--real", str(sets / "real"), "--synthetic", str(sets / "syn_dark"),
                 "--features", "inception", "--dims", "64", "--resolution", str(SIZE), "--out", str(out),
                 "--clip-weights", str(tmp_path / "clip"), "--prompt", "LGE Cardiac MRI"])
    assert code == 0, capsys.readouterr().err
    assert "RANDOM-INITIALISED" in capsys.readouterr().out
    result = json.loads((out / "generator_metrics.json").read_text(encoding="utf-8"))
    assert result["random_feature_weights"] is True and result["fid"] > 0 and result["feature_dims"] == 64
    assert result["real_slices"] == 8 and result["synthetic_slices"] == 8
    assert result["clip_text"] is not None and result["intensity"]["ring"]["mean_difference"] < 0
    assert "WARNING" in (out / "generator_metrics.md").read_text(encoding="utf-8")
    for png in ("generator_samples.png", "generator_histograms.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def _tiny_vae(folder):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
                        norm_num_groups=4, layers_per_block=1, sample_size=SIZE)
    vae.save_pretrained(folder)


def test_reconstruction_metrics_match_formula():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, SIZE, SIZE)).astype(np.float32)
    y = np.clip(x + 0.1, -1, 1).astype(np.float32)
    m = reconstruction_metrics(x, y)
    mse = (((y - x) / 2) ** 2).mean(axis=(1, 2))
    assert m["psnr"] == pytest.approx(float(np.mean(10 * np.log10(1 / mse))), rel=1e-4)
    assert m["ssim"] < 1
    assert reconstruction_metrics(x, x)["ssim"] == pytest.approx(1.0, abs=1e-5)


def test_cli_evaluate_autoencoder(sets, tmp_path, capsys):
    _tiny_vae(tmp_path / "vae")
    out = tmp_path / "ae"
    code = main(["evaluate-autoencoder", "--vae", str(tmp_path / "vae"), "--images", str(sets / "syn_same"),
                 "--resolution", str(SIZE), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads((out / "autoencoder_metrics.json").read_text(encoding="utf-8"))
    assert result["slices"] == 8 and math.isfinite(result["psnr"]) and 0 < result["psnr"] < 60
    assert -1 <= result["ssim"] <= 1
    assert (out / "autoencoder_samples.png").read_bytes()[:4] == b"\x89PNG"
    assert "PSNR" in (out / "autoencoder_metrics.md").read_text(encoding="utf-8")
    code = main(["evaluate-autoencoder", "--vae", str(tmp_path / "vae"), "--images", str(sets / "syn_same"),
                 "--resolution", "31", "--out", str(tmp_path / "ae2")])
    assert code == 1 and "not a multiple" in capsys.readouterr().err
    assert not (tmp_path / "ae2").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--real", "{missing}", "--synthetic", "{real}"], "not a folder and $nnUNet_raw is not set"),
    (["--real", "{empty}", "--synthetic", "{real}"], "no images found"),
    (["--real", "{real}", "--synthetic", "{real}", "--features", "vgg"], "unknown feature extractor"),
    (["--real", "{real}", "--synthetic", "{real}", "--weights", "{missing}"], "weights file not found"),
])
def test_cli_bad_inputs_one_line(sets, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.delenv("nnUNet_raw", raising=False)
    (tmp_path / "empty").mkdir()
    paths = {"missing": str(tmp_path / "nope"), "empty": str(tmp_path / "empty"), "real": str(sets / "real")}
    argv = ["evaluate-generator", *[a.format(**paths) for a in args], "--resolution", str(SIZE),
            "--out", str(tmp_path / "out")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrgen-nnunet: error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_dataset_id_resolved_in_nnunet_raw(sets, tmp_path, monkeypatch, capsys):
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(sets / "syn_same", raw / "Dataset501_SynLGE")
    monkeypatch.setenv("nnUNet_raw", str(raw))
    _tiny_vae(tmp_path / "vae")
    code = main(["evaluate-autoencoder", "--vae", str(tmp_path / "vae"), "--images", "501",
                 "--resolution", str(SIZE), "--out", str(tmp_path / "ae")])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "ae" / "autoencoder_metrics.json").read_text(encoding="utf-8"))["images"].endswith("Dataset501_SynLGE")


def test_real_mscmrseg_lge_slices(shared_data, tmp_path):
    """MS-CMRSeg LGE patient 1 as a plain image_K/label_K folder: one slice per labelled axial slice."""
    import SimpleITK as sitk

    lge = shared_data / "mscmrseg" / "LGE"
    for name in ("image_1.nii.gz", "label_1.nii.gz"):
        (tmp_path / name).symlink_to(lge / name)
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(lge / "label_1.nii.gz")))
    slice_set = load_eval_slices(tmp_path, 64)
    assert len(slice_set.slices) == int((label.reshape(label.shape[0], -1).max(axis=1) > 0).sum())
    assert slice_set.labels == {"background": 0, "label_1": 1, "label_2": 2, "label_3": 3}
    stats = intensity_statistics(slice_set, slice_set)
    assert stats["label_2"]["wasserstein"] == 0.0 and stats["label_2"]["real"]["pixels"] > 0
