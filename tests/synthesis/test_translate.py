"""Translate mode with the real tiny generator: the source slice (not noise) is the starting point, its labels and
geometry are kept, strength 0 is the source itself, seeds reproduce, and bad settings are one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from synthesis_helpers import make_source_dataset, read_json, tree_bytes

from mrgen_nnunet.cli.main import main
from mrgen_nnunet.data.io import read_image
from mrgen_nnunet.generator.pipeline import MRGenPipeline


@pytest.fixture(scope="module")
def pipe(generator):
    return MRGenPipeline.from_pretrained(generator)


def _inputs(pipe, b=2):
    n = pipe.config.resolution
    maps = np.zeros((b, n, n), dtype=np.uint8)
    maps[:, 8:24, 8:24] = 1
    maps[:, 12:20, 12:20] = 2
    image = torch.from_numpy(np.where(maps > 0, 0.5, -0.8).astype(np.float32))[:, None]
    return pipe.encode_masks(maps), image


@pytest.mark.parametrize("method", ["sdedit", "inversion"])
def test_pipeline_translate(pipe, method):
    mask, image = _inputs(pipe)

    def run(seed, strength):
        return pipe("LGE", mask, num_inference_steps=4, guidance_scale=2.0, image=image, strength=strength,
                    translate=method, generator=[torch.Generator().manual_seed(seed + i) for i in range(2)],
                    scheduler="dpm").images

    assert torch.equal(run(0, 0.0), image)  # strength 0: the source itself
    a, b = run(0, 0.5), run(0, 0.5)
    assert a.shape == image.shape and torch.equal(a, b)  # same seed, same output
    assert not torch.allclose(a, image)
    assert (a >= -1).all() and (a <= 1).all()
    if method == "sdedit":
        assert not torch.allclose(a, run(5, 0.5))  # the noise depends on the seed
    full = pipe("LGE", mask, num_inference_steps=4, guidance_scale=2.0,
                generator=[torch.Generator().manual_seed(i) for i in range(2)], scheduler="dpm").images
    assert not torch.allclose(a, full)  # not the mask-only sample


def _args(raw, out_id, *extra):
    return ["synthesize", "--target", "LGE", "--source", "101", "--generator", "GEN", "--out-raw", str(raw),
            "--out-dataset", str(out_id), "--samples-per-mask", "1", "--max-tries", "1", "--batch-size", "2",
            "--steps", "2", "--filter", "none", "--device", "cpu", *extra]


def test_engine_translate_keeps_labels_and_geometry(tmp_path, generator):
    raw = tmp_path / "raw"
    src = make_source_dataset(raw, n_patients=2, slices=2)
    args = [a if a != "GEN" else str(generator) for a in _args(raw, 503, "--mode", "translate", "--strength", "0.5")]
    assert main(args) == 0
    out = raw / "Dataset503_MRGen_LGE"
    s = read_json(out / "summary.json")
    assert s["complete"] and s["accepted"] == 3 and s["settings"]["mode"] == "translate"
    for label_file in sorted((out / "labelsTr").glob("*.nii.gz")):
        source_case = label_file.name.removeprefix("syn_").rsplit("_k", 1)[0]  # syn_{source case}_k{j}
        synthetic, geometry = read_image(label_file)
        source, source_geometry = read_image(src / "labelsTr" / f"{source_case}.nii.gz")
        assert np.array_equal(synthetic, source) and geometry == source_geometry
        image, _ = read_image(out / "imagesTr" / label_file.name.replace(".nii.gz", "_0000.nii.gz"))
        assert image.shape == source.shape and np.isfinite(image).all()
    again = [a if a != "GEN" else str(generator) for a in _args(raw, 504, "--mode", "translate", "--strength", "0.5")]
    assert main(again) == 0
    assert tree_bytes(out / "imagesTr") == tree_bytes(raw / "Dataset504_MRGen_LGE" / "imagesTr")


@pytest.mark.parametrize("extra, message", [
    (("--mode", "translate", "--strength", "1.5"), "--strength"),
    (("--strength", "0.3"), "apply to --mode translate only"),
    (("--mode", "translate", "--translate", "cyclegan"), "--translate"),
    (("--mode", "paint"), "--mode"),
])
def test_bad_translate_settings_are_one_line_errors(tmp_path, generator, capsys, extra, message):
    raw = tmp_path / "raw"
    make_source_dataset(raw, n_patients=1, slices=2)
    before = sorted(p.name for p in raw.iterdir())
    assert main([a if a != "GEN" else str(generator) for a in _args(raw, 505, *extra)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert sorted(p.name for p in raw.iterdir()) == before  # nothing written
