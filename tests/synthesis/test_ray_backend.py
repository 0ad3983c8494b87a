"""`synthesize --backend ray` on a local Ray instance (ray.init(num_cpus=2)) with the real tiny generator: the same
dataset, byte for byte, as the local engine for the same seeds; resume skips masks an earlier run finished."""

from __future__ import annotations

import sys
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from synthesis_helpers import make_source_dataset, read_json, tree_bytes

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'mrgen-nnunet[ray]' to test --backend ray")
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'ray[data]'")

from mrgen_nnunet.filtering.selection import CandidateScores, OrganScore, Thresholds  # noqa: E402
from mrgen_nnunet.synthesis.ray_backend import synthesize_ray  # noqa: E402
from mrgen_nnunet.synthesis.run import SynthesisOptions, synthesize  # noqa: E402

THRESHOLDS = Thresholds(iou=0.0, conf=0.5, mean_iou=0.0, mean_conf=0.5, min_foreground=0.005)


class BrightnessFilter:
    """A deterministic stand-in filter (random SAM2 costs seconds per candidate at 1024 px on 2 cores): per organ,
    IoU of `image > 0` with the organ, confidence = mean image value inside the organ mapped to [0, 1]. With
    THRESHOLDS about half the candidates of the tiny generator pass, so selection and relaxation really run."""

    name = "bright"
    checks = True
    id = "bright-v1"

    def check_labels(self, labels):
        pass

    def score(self, images, label_maps, labels, pixel_spacing=None):
        out = []
        for image, label_map in zip(images, label_maps, strict=True):
            organs = {}
            for name, value in labels.items():
                target = label_map == value
                if value == 0 or not target.any():
                    continue
                fg = image > 0
                iou = float((fg & target).sum() / max((fg | target).sum(), 1))
                organs[name] = OrganScore(iou, float(np.clip((image[target].mean() + 1) / 2, 0, 1)))
            out.append(CandidateScores(organs, {}, (image > 0).astype(np.uint8)))
        return out


class CountingPipeline:
    """The real pipeline; every call leaves a file `calls/<uuid>` holding its number of images."""

    def __init__(self, pipe, calls: Path):
        self.pipe, self.calls, self.config = pipe, calls, pipe.config

    def encode_masks(self, maps):
        return self.pipe.encode_masks(maps)

    def __call__(self, prompt, mask, **kw):
        self.calls.mkdir(exist_ok=True)
        (self.calls / uuid.uuid4().hex).write_text(str(len(prompt)))
        return self.pipe(prompt, mask, **kw)


def build(options: SynthesisOptions):
    """Runs in each Ray actor (and the driver): the real tiny generator from its folder + the stand-in filter."""
    from mrgen_nnunet.generator.pipeline import MRGenPipeline

    pipe = MRGenPipeline.from_pretrained(options.generator)
    return CountingPipeline(pipe, Path(options.out_raw).parent / f"calls_{options.device}"), BrightnessFilter()


def calls(raw: Path) -> int:
    folder = raw.parent / "calls_cpu"
    n = sum(int(p.read_text()) for p in folder.iterdir()) if folder.is_dir() else 0
    if folder.is_dir():
        for p in folder.iterdir():
            p.unlink()
    return n


@pytest.fixture(scope="module")
def local_ray():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # actors get `build` without importing tests/
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def opts(root: Path, generator: Path, **kw) -> SynthesisOptions:
    raw = root / "raw"
    if not raw.is_dir():
        make_source_dataset(raw, n_patients=3, slices=2)
    base = dict(target="LGE", source="101", generator=str(generator), out_raw=str(raw), out_dataset=501,
                name="SYN", samples_per_mask=2, max_tries=4, batch_size=4, steps=2, filter="none",
                thresholds=THRESHOLDS, progress=False)
    return SynthesisOptions(**(base | kw))


def local_run(o: SynthesisOptions) -> dict[str, bytes]:
    """The local engine in this process, at the actors' thread count (1 CPU each): float bits depend on it."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pipe, filt = build(o)
        summary = synthesize(o, pipeline=pipe, filter_backend=filt)
    finally:
        torch.set_num_threads(threads)
    assert summary.complete
    return tree_bytes(Path(summary.dataset))


def test_two_ray_workers_equal_the_local_engine(tmp_path, generator, local_ray):
    local = local_run(opts(tmp_path / "local", generator))
    o = opts(tmp_path / "ray", generator)
    summary = synthesize_ray(o, workers=2, units_per_worker=2, build=build)
    assert summary.complete and summary.dataset.endswith("Dataset501_SYN")
    assert calls(Path(o.out_raw)) == summary.candidates  # every candidate generated once, by the actors
    out = Path(summary.dataset)
    assert tree_bytes(out) == local
    cands = [c for line in (out / "candidates.jsonl").read_text().splitlines()
             for c in read_json_line(line)["candidates"]]
    assert {c["passed"] for c in cands} == {True, False}  # the filter really rejected some
    meta = read_json(out / "dataset.json")
    assert meta["numTraining"] == summary.accepted > 0
    assert not list(Path(o.out_raw).glob(".mrgen-partial-*"))


def test_ray_resumes_an_interrupted_run(tmp_path, generator, local_ray):
    full = local_run(opts(tmp_path / "local", generator))
    o = opts(tmp_path / "ray", generator)
    pipe, filt = build(o)
    import torch

    torch.set_num_threads(1)  # the autouse conftest fixture sets it again for the next test
    half = synthesize(replace(o, shard=0, num_shards=2), pipeline=pipe, filter_backend=filt)  # "killed" half way
    assert not half.complete and 0 < half.candidates < half.masks * o.max_tries
    done_before = half.candidates
    calls(Path(o.out_raw))
    summary = synthesize_ray(o, workers=1, units_per_worker=3, build=build)
    assert summary.complete and tree_bytes(Path(summary.dataset)) == full
    assert calls(Path(o.out_raw)) == summary.candidates - done_before  # finished masks were not redone
    # a finished dataset is not overwritten; sharding flags are refused
    from mrgen_nnunet.errors import MRGenError

    with pytest.raises(MRGenError, match="already used"):
        synthesize_ray(o, workers=1, build=build)
    with pytest.raises(MRGenError, match="shards the manifest"):
        synthesize_ray(replace(o, out_dataset=502, num_shards=2), build=build)


def read_json_line(line: str) -> dict:
    import json

    return json.loads(line)


def test_cli_backend_errors_are_one_line(tmp_path, capsys):
    from mrgen_nnunet.cli.main import main

    raw = tmp_path / "raw"
    make_source_dataset(raw, n_patients=1, slices=2)
    base = ["synthesize", "--target", "LGE", "--source", "101", "--generator", str(tmp_path), "--out-raw", str(raw),
            "--out-dataset", "502", "--filter", "none"]
    assert main(base + ["--backend", "spark"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("mrgen-nnunet: error: unknown backend 'spark'") and err.count("\n") == 1
    assert main(base + ["--backend", "ray", "--shard", "0/2"]) != 0
    err = capsys.readouterr().err
    assert "--backend ray shards the manifest itself" in err and err.count("\n") == 1
    assert not list(raw.glob("Dataset502_*")) and not list(raw.glob(".mrgen-partial-*"))
