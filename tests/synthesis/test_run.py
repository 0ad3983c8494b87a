"""The synthesis engine: manifest, dataset writing, resume after SIGKILL, sharding, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from synthesis_helpers import LABELS, StandInPipeline, read_json, tree_bytes

from mrgen_nnunet.data.io import read_image
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.filtering.backends import NoFilter
from mrgen_nnunet.synthesis.manifest import build_manifest, item_seed, load_sources
from mrgen_nnunet.synthesis.run import SynthesisOptions, synthesize
from mrgen_nnunet.synthesis.scheduler import shard_chunks


def options(raw: Path, **kw) -> SynthesisOptions:
    base = dict(target="LGE", source="101", generator="standin", out_raw=str(raw), out_dataset=501, name="SYN",
                samples_per_mask=2, max_tries=3, batch_size=2, steps=2, filter="none", progress=False)
    return SynthesisOptions(**(base | kw))


def test_manifest_is_deterministic_and_shards_are_disjoint(source_raw):
    src = load_sources("101", source_raw)
    a, b = build_manifest(src, 4, seed=7), build_manifest(load_sources(str(source_raw / "Dataset101_SRC"), None), 4, 7)
    assert [(i.source.case, i.seeds) for i in a] == [(i.source.case, i.seeds) for i in b]
    assert len(a) == 6 and a[0].seeds[2] == item_seed(7, a[0].source.case, 2)
    assert build_manifest(src, 4, seed=8)[0].seeds != a[0].seeds
    assert len({s for i in a for s in i.seeds}) == 24  # distinct seeds across cases and tries
    shards = [shard_chunks(a, 2, k, 3) for k in range(3)]  # chunks of 2 consecutive masks, round robin
    assert [[[i.index for i in c] for c in s] for s in shards] == [[[0, 1]], [[2, 3]], [[4, 5]]]
    assert [[i.index for i in c] for c in shard_chunks(a, 2, 0, 2)] == [[0, 1], [4, 5]]


def test_synthesize_writes_an_nnunet_slice_dataset(source_raw):
    pipe = StandInPipeline()
    summary = synthesize(options(source_raw), pipeline=pipe, filter_backend=NoFilter())
    out = source_raw / "Dataset501_SYN"
    assert summary.complete and summary.dataset == str(out)
    assert (summary.masks, summary.masks_skipped, summary.candidates, summary.accepted) == (6, 1, 10, 10)
    assert "no quality check" in summary.note and summary.filter == "none"
    meta = read_json(out / "dataset.json")
    assert meta["labels"] == LABELS and meta["numTraining"] == 10 and meta["channel_names"] == {"0": "LGE"}
    assert meta["mrgen"]["modality"] == "LGE Cardiac MRI" and meta["mrgen"]["kind"] == "slices"
    assert sorted(meta["mrgen"]["synthetic_cases"]) == sorted(meta["mrgen"]["patients"])
    assert meta["mrgen"]["patients"]["syn_bSSFP002_z001_k1"] == "bSSFP/002"
    assert "syn_bSSFP001_z000_k0" not in meta["mrgen"]["patients"]  # empty mask skipped
    # image on the source slice's grid and spacing, label = source label unresampled
    img, g = read_image(out / "imagesTr" / "syn_bSSFP002_z001_k0_0000.nii.gz")
    lab, gl = read_image(out / "labelsTr" / "syn_bSSFP002_z001_k0.nii.gz")
    src_img, sg = read_image(source_raw / "Dataset101_SRC" / "imagesTr" / "bSSFP002_z001_0000.nii.gz")
    src_lab, _ = read_image(source_raw / "Dataset101_SRC" / "labelsTr" / "bSSFP002_z001.nii.gz")
    assert img.shape == src_img.shape == (40, 48) and g == sg == gl
    assert np.array_equal(lab, src_lab)
    assert src_img.min() - 1e-3 <= img.min() and img.max() <= src_img.max() + 1e-3  # inverse normalisation
    assert not np.allclose(img, src_img)
    prov = [read_json_line(x) for x in (out / "provenance.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(prov) == 10 and prov[0]["prompt"].startswith("LGE Cardiac MRI, ")
    assert {"source_case", "seed", "try", "prompt", "filter", "generator", "organs", "relaxed"} <= set(prov[0])
    assert (out / "contact_sheet.png").stat().st_size > 0 and (out / "summary.json").is_file()
    assert not any(p.name.startswith(".") for p in source_raw.iterdir())  # no partial folder left
    # batches: tries of one mask in chunks of batch_size, prompt per sample
    assert all(shape[0] <= 2 for _, shape, _, _ in pipe.calls)

    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(out), num_processes=1)


def read_json_line(line: str) -> dict:
    import json

    return json.loads(line)


def test_refuses_existing_dataset_and_bad_inputs(source_raw):
    synthesize(options(source_raw), pipeline=StandInPipeline(), filter_backend=NoFilter())
    with pytest.raises(MRGenError, match="already used"):
        synthesize(options(source_raw), pipeline=StandInPipeline(), filter_backend=NoFilter())
    s = synthesize(options(source_raw, force=True, samples_per_mask=1), pipeline=StandInPipeline(),
                   filter_backend=NoFilter())
    assert s.accepted == 5 and len(list((source_raw / "Dataset501_SYN" / "imagesTr").iterdir())) == 5
    other = StandInPipeline()
    other.config.labels = {"background": 0, "liver": 1}
    with pytest.raises(MRGenError, match="disagree"):
        synthesize(options(source_raw, out_dataset=502), pipeline=other, filter_backend=NoFilter())
    other.config = vars(other.config)  # a dict is not a GeneratorConfig: no dict-or-object reads in the engine
    with pytest.raises(MRGenError, match="not a generator pipeline"):
        synthesize(options(source_raw, out_dataset=502), pipeline=other, filter_backend=NoFilter())
    assert not (source_raw / "Dataset502_SYN").exists()
    with pytest.raises(MRGenError, match="unknown modality"):
        synthesize(options(source_raw, out_dataset=502, target="PET"), pipeline=StandInPipeline(),
                   filter_backend=NoFilter())
    with pytest.raises(MRGenError, match="not found"):
        synthesize(options(source_raw, out_dataset=502, source="999"), pipeline=StandInPipeline(),
                   filter_backend=NoFilter())


def test_sharded_runs_equal_one_run(tmp_path, source_raw):
    from synthesis_helpers import make_source_dataset

    one = synthesize(options(source_raw), pipeline=StandInPipeline(), filter_backend=NoFilter())
    raw2 = tmp_path / "raw2"
    make_source_dataset(raw2)
    first = synthesize(options(raw2, shard=0, num_shards=2), pipeline=StandInPipeline(), filter_backend=NoFilter())
    assert not first.complete and first.dataset is None and not (raw2 / "Dataset501_SYN").exists()
    last = synthesize(options(raw2, shard=1, num_shards=2), pipeline=StandInPipeline(), filter_backend=NoFilter())
    assert last.complete and last.accepted == one.accepted
    assert tree_bytes(raw2 / "Dataset501_SYN") == tree_bytes(source_raw / "Dataset501_SYN")


def test_changed_options_refuse_resume_without_force(source_raw):
    synthesize(options(source_raw, shard=0, num_shards=2), pipeline=StandInPipeline(), filter_backend=NoFilter())
    with pytest.raises(MRGenError, match="other options"):
        synthesize(options(source_raw, seed=1), pipeline=StandInPipeline(), filter_backend=NoFilter())
    s = synthesize(options(source_raw, seed=1, force=True), pipeline=StandInPipeline(), filter_backend=NoFilter())
    assert s.complete


RUNNER = """
import sys, time
sys.path[:0] = [{tests!r}, {tests_root!r}]  # synthesis_helpers, and the fixtures plugin it imports
from synthesis_helpers import StandInPipeline
from mrgen_nnunet.filtering.backends import NoFilter
from mrgen_nnunet.synthesis.run import SynthesisOptions, synthesize

class Slow(StandInPipeline):
    def __call__(self, *a, **k):
        time.sleep({delay})
        return super().__call__(*a, **k)

o = SynthesisOptions(target="LGE", source="101", generator="standin", out_raw={raw!r}, out_dataset=501, name="SYN",
                     samples_per_mask=2, max_tries=3, batch_size=2, steps=2, filter="none", progress=False)
synthesize(o, pipeline=Slow(), filter_backend=NoFilter())
"""


def run_script(raw: Path, delay: float) -> subprocess.Popen:
    code = RUNNER.format(tests=str(Path(__file__).parent), tests_root=str(Path(__file__).parents[1]), raw=str(raw),
                         delay=delay)
    return subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ, OMP_NUM_THREADS="1"))


def test_resume_after_sigkill_is_identical(tmp_path, source_raw):
    from synthesis_helpers import make_source_dataset

    reference = run_script(source_raw, 0.0)
    assert reference.wait(timeout=120) == 0
    raw2 = tmp_path / "raw2"
    make_source_dataset(raw2)
    proc = run_script(raw2, 0.4)
    items = raw2 / ".mrgen-partial-Dataset501_SYN" / "items"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(items.glob("*.json"))) < 2:
        time.sleep(0.05)
    time.sleep(0.2)  # land somewhere inside the next mask
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list(items.glob("*.json")))
    assert 2 <= done < 6 and not (raw2 / "Dataset501_SYN").exists()
    resumed = run_script(raw2, 0.0)
    assert resumed.wait(timeout=120) == 0
    assert tree_bytes(raw2 / "Dataset501_SYN") == tree_bytes(source_raw / "Dataset501_SYN")
    a = read_json(raw2 / "Dataset501_SYN" / "summary.json")
    b = read_json(source_raw / "Dataset501_SYN" / "summary.json")
    assert {k: v for k, v in a.items() if k not in ("seconds", "slices_per_second", "dataset")} == \
        {k: v for k, v in b.items() if k not in ("seconds", "slices_per_second", "dataset")}


def test_options_fingerprint_ignores_sharding():
    o = SynthesisOptions(target="LGE", source="1", generator="g", out_raw="r", out_dataset=1)
    assert o.fingerprint() == replace(o, shard=1, num_shards=4, force=True, progress=False).fingerprint()
    assert o.fingerprint() != replace(o, seed=3).fingerprint()
