"""Synthesis profiles: resolution (reference = MRGen's settings exactly, explicit options win), the batch schedule
each profile produces, determinism of the fast profile with the real tiny generator, and SAM2 encoder passes
counted on the real (random-initialised) SAM2 predictor: once per organ (reference) vs once per image (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synthesis_helpers import StandInPipeline, make_source_dataset, read_json, tree_bytes

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.filtering.selection import CandidateScores, OrganScore, Thresholds, iou
from mrgen_nnunet.synthesis.profiles import PROFILES, resolve_profile
from mrgen_nnunet.synthesis.run import SynthesisOptions, synthesize

ZERO = Thresholds(iou=0.0, conf=0.0, mean_iou=0.0, mean_conf=0.0)  # every scored candidate passes


def options(raw: Path, **kw) -> SynthesisOptions:
    base = dict(target="LGE", source="101", generator="standin", out_raw=str(raw), out_dataset=501, name="SYN",
                samples_per_mask=2, steps=2, filter="sam2", progress=False)
    return SynthesisOptions(**(base | kw))


class BrightnessFilter:
    """Test stand-in for a filter: an organ 'passes' when the image is brighter inside it than outside.
    IoU = IoU of (image > 0) with the organ; conf = 1. Deterministic in the image."""

    name = "bright"
    checks = True
    id = "bright"

    def __init__(self):
        self.batches = []

    def check_labels(self, labels):
        pass

    def score(self, images, label_maps, labels, pixel_spacing=None):
        self.batches.append(len(images))
        out = []
        for image, lab in zip(images, label_maps, strict=True):
            organs = {}
            for name, v in labels.items():
                if v and (lab == v).any():
                    inside, outside = image[lab == v].mean(), image[lab != v].mean()
                    organs[name] = OrganScore(iou(image > 0, lab == v) if inside > outside else 0.0, 1.0)
            out.append(CandidateScores(organs, {}, (image > 0).astype(np.uint8)))
        return out


def test_profile_resolution_reference_is_mrgen_and_explicit_options_win():
    ref = resolve_profile(SynthesisOptions("LGE", "1", "g", "r", 1, profile="reference"))
    assert (ref.steps, ref.scheduler, ref.guidance, ref.max_tries, ref.batch_size, ref.masks_per_batch) == \
        (50, "ddim", 7.0, 20, 10, 1)
    assert (ref.early_stop, ref.sam2_encode, ref.overlap, ref.mixed_precision, ref.compile) == \
        (False, "organ", False, False, False)
    fast = resolve_profile(SynthesisOptions("LGE", "1", "g", "r", 1))  # fast is the default
    assert fast.profile == "fast" and (fast.scheduler, fast.steps, fast.early_stop, fast.sam2_encode) == \
        ("dpm", 20, True, "image")
    assert fast.overlap and fast.masks_per_batch > 1 and fast.batch_size >= fast.masks_per_batch * 2
    mixed = resolve_profile(SynthesisOptions("LGE", "1", "g", "r", 1, profile="reference", steps=7,
                                             scheduler="dpm", early_stop=True, masks_per_batch=3))
    assert (mixed.steps, mixed.scheduler, mixed.early_stop, mixed.masks_per_batch) == (7, "dpm", True, 3)
    assert (mixed.guidance, mixed.batch_size, mixed.sam2_encode) == (7.0, 10, "organ")  # the rest from the profile
    assert set(PROFILES) == {"reference", "fast"}
    with pytest.raises(MRGenError, match="unknown profile 'turbo'"):
        resolve_profile(SynthesisOptions("LGE", "1", "g", "r", 1, profile="turbo"))
    with pytest.raises(MRGenError, match="unknown value 'box' \\(--sam2-encode\\)"):
        resolve_profile(SynthesisOptions("LGE", "1", "g", "r", 1, sam2_encode="box"))
    # the resolved settings are part of the resume fingerprint
    assert ref.fingerprint() != resolve_profile(SynthesisOptions("LGE", "1", "g", "r", 1)).fingerprint()


def test_reference_schedule_is_20_candidates_in_two_batches_of_one_mask(source_raw):
    pipe, filt = StandInPipeline(), BrightnessFilter()
    s = synthesize(options(source_raw, profile="reference", thresholds=ZERO), pipeline=pipe, filter_backend=filt)
    assert s.complete and s.masks == 6 and s.masks_skipped == 1
    assert s.candidates == 5 * 20 and s.accepted == 5 * 2  # no early stop although every candidate passes
    assert [(shape[0], steps, sched) for _, shape, steps, sched in pipe.calls] == [(10, 2, "ddim")] * 10
    assert all(len(set(prompts)) == 1 for prompts, *_ in pipe.calls)
    assert filt.batches == [10] * 10


def test_fast_schedule_batches_masks_together_and_stops_early(source_raw):
    pipe, filt = StandInPipeline(), BrightnessFilter()
    s = synthesize(options(source_raw, thresholds=ZERO), pipeline=pipe, filter_backend=filt)
    assert s.complete and s.candidates == 5 * 2 and s.accepted == 5 * 2  # exactly k per mask when all pass
    # chunks of 4 masks: [skipped, 3 masks] and [2 masks] -> one call each, several masks per call
    assert sorted(shape[0] for _, shape, _, _ in pipe.calls) == [4, 6]
    assert {(steps, sched) for _, _, steps, sched in pipe.calls} == {(2, "dpm")}

    raw2 = source_raw.parent / "raw2"
    make_source_dataset(raw2)
    strict = Thresholds(iou=0.6, conf=0.5, mean_iou=0.6, mean_conf=0.5)
    with pytest.raises(MRGenError, match="no candidate was accepted"):  # nothing passes: no empty dataset
        synthesize(options(raw2, thresholds=strict, max_tries=6), pipeline=StandInPipeline(),
                   filter_backend=BrightnessFilter())
    assert not (raw2 / "Dataset501_SYN").exists()
    records = [json.loads(x) for x in
               (raw2 / ".mrgen-partial-Dataset501_SYN" / "candidates.jsonl").read_text().splitlines()]
    done = [r for r in records if r["skipped"] is None]
    passed = [sum(c["passed"] for c in r["candidates"]) for r in done]
    assert all(p == 2 or len(r["candidates"]) == 6 for p, r in zip(passed, done, strict=True))  # stop at k passes
    assert all(p <= 2 for p in passed) and not any(r["accepted"] for r in done)


def test_fast_profile_real_generator_valid_dataset_and_rerun_identical(tmp_path, generator):
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    from mrgen_nnunet.filtering.backends import NoFilter

    outs = []
    for run in ("a", "b"):
        raw = tmp_path / run
        make_source_dataset(raw, n_patients=2, slices=2)  # 3 masks with foreground
        s = synthesize(options(raw, generator=str(generator), filter="none", samples_per_mask=2, steps=3,
                               masks_per_batch=2), filter_backend=NoFilter())
        assert s.complete and s.accepted == 6 and s.candidates == 6
        outs.append(raw / "Dataset501_SYN")
    verify_dataset_integrity(str(outs[0]), num_processes=1)
    assert tree_bytes(outs[0]) == tree_bytes(outs[1])
    run_json = read_json(outs[0] / "summary.json")
    assert run_json["filter"] == "none"


def test_sam2_encodes_once_per_organ_in_reference_and_once_per_image_in_fast(tmp_path):
    from mrgen_nnunet.filtering.sam2_filter import SAM2Filter, build_sam2_predictor

    predictor = build_sam2_predictor("tiny", None)
    encoded = []  # images per encoder call
    forward_image = predictor.model.forward_image

    def counting(batch):
        encoded.append(batch.shape[0])
        return forward_image(batch)

    predictor.model.forward_image = counting
    scores = {}
    for profile, dataset_id, tries in (("reference", 511, 1), ("fast", 512, 2)):
        raw = tmp_path / profile
        make_source_dataset(raw, n_patients=2, slices=1)  # one mask with 2 organs (patient 1's slice is empty)
        encoded.clear()
        s = synthesize(options(raw, profile=profile, out_dataset=dataset_id, max_tries=tries, batch_size=2,
                               samples_per_mask=tries, thresholds=ZERO), pipeline=StandInPipeline(),
                       filter_backend=SAM2Filter(predictor))
        assert s.candidates == tries and s.accepted == tries and s.filter == "sam2:mask"
        scores[profile] = [c["organs"] for line in (Path(s.dataset) / "candidates.jsonl").read_text().splitlines()
                           for c in json.loads(line)["candidates"]]
        if profile == "reference":
            assert encoded == [1, 1]  # 1 candidate x 2 organs, one image per encoder pass
        else:
            assert encoded == [2]  # both candidates in one batched pass
    # same image (same seed of try 0), same scores: only the number of encoder passes differs
    for a, b in zip(scores["reference"], scores["fast"][:1], strict=True):
        assert a.keys() == b.keys() == {"myocardium", "left ventricle"}
        for organ in a:
            assert a[organ]["iou"] == pytest.approx(b[organ]["iou"], abs=1e-3)
            assert a[organ]["conf"] == pytest.approx(b[organ]["conf"], abs=1e-3)


def test_cli_unknown_profile_is_a_one_line_error(source_raw, capsys):
    from mrgen_nnunet.cli.main import main

    args = ["synthesize", "--target", "LGE", "--source", "101", "--generator", str(source_raw), "--out-raw",
            str(source_raw), "--out-dataset", "530", "--filter", "none"]
    assert main([*args, "--profile", "turbo"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrgen-nnunet: error: unknown profile 'turbo'") and err.count("\n") == 1
    assert main([*args, "--profile", "reference", "--sam2-encode", "twice"]) == 1
    assert "unknown value 'twice' (--sam2-encode)" in capsys.readouterr().err
    assert not any(p.name.startswith((".mrgen", "Dataset530")) for p in source_raw.iterdir())
