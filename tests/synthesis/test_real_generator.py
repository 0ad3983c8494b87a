"""`synthesize` end to end with the real tiny generator (trained 2 steps per stage at 32 px) and the real CLI."""

from __future__ import annotations

import json

from synthesis_helpers import make_source_dataset, read_json

from mrgen_nnunet.cli.main import main


def test_cli_synthesize_with_real_tiny_generator(tmp_path, generator, capsys):
    raw = tmp_path / "raw"
    make_source_dataset(raw, n_patients=2, slices=2)
    args = ["synthesize", "--target", "LGE", "--source", "101", "--generator", str(generator), "--out-raw", str(raw),
            "--out-dataset", "502", "--name", "LGEsyn", "--samples-per-mask", "1", "--max-tries", "2",
            "--batch-size", "2", "--steps", "2", "--filter", "none"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    out = raw / "Dataset502_LGEsyn"
    s = read_json(out / "summary.json")
    assert s["complete"] and s["masks"] == 4 and s["masks_skipped"] == 1 and s["accepted"] == 3
    assert s["candidates"] == 3 and s["generator"] == "gen" and s["slices_per_second"] > 0
    meta = read_json(out / "dataset.json")
    assert meta["numTraining"] == 3 and meta["mrgen"]["synthetic_cases"] == sorted(meta["mrgen"]["patients"])
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    verify_dataset_integrity(str(out), num_processes=1)
    assert json.loads(printed[printed.index("{"):])["accepted"] == 3
    assert printed.count("device: ") == 1 and printed.startswith("device: ")  # --device auto, resolved once
    # the same command again refuses to overwrite; wrong target and missing SAM2 checkpoint are one-line errors
    assert main(args) == 1
    assert "already used" in capsys.readouterr().err
    bad = [a if a != "LGE" else "PET" for a in args]
    bad[bad.index("502")] = "503"
    assert main(bad) == 1
    err = capsys.readouterr().err
    assert err.startswith("mrgen-nnunet: error: unknown modality 'PET'") and err.count("\n") == 1
    sam = args[:-1] + ["sam2"]
    sam[sam.index("502")] = "504"
    assert main(sam) == 1
    assert "needs a checkpoint" in capsys.readouterr().err
    assert not (raw / "Dataset503_LGEsyn").exists() and not (raw / "Dataset504_LGEsyn").exists()


def test_engine_with_real_generator_and_random_sam2(tmp_path, generator):
    from mrgen_nnunet.filtering.sam2_filter import SAM2Filter, build_sam2_predictor
    from mrgen_nnunet.generator.pipeline import MRGenPipeline
    from mrgen_nnunet.synthesis.run import SynthesisOptions, synthesize

    raw = tmp_path / "raw"
    make_source_dataset(raw, n_patients=2, slices=1)  # patient 1's slice is empty -> 1 mask to generate for
    o = SynthesisOptions(target="LGE", source="101", generator=str(generator), out_raw=str(raw), out_dataset=505,
                         name="SAM", samples_per_mask=1, max_tries=2, batch_size=2, steps=2, filter="sam2",
                         progress=False)
    import pytest

    from mrgen_nnunet.errors import MRGenError

    try:
        s = synthesize(o, pipeline=MRGenPipeline.from_pretrained(generator),
                       filter_backend=SAM2Filter(build_sam2_predictor("tiny", None)))
    except MRGenError as exc:  # a random SAM2 usually passes nothing, even relaxed: no empty dataset is published
        assert "no candidate was accepted" in str(exc)
        assert not (raw / "Dataset505_SAM").exists()
        folder = raw / ".mrgen-partial-Dataset505_SAM"  # the scores are kept for the user to look at
    else:
        assert s.filter == "sam2:mask" and s.candidates == 2 and s.masks_skipped == 1
        # a random SAM2 cannot pass MRGen's thresholds; relaxed, at most one is kept
        assert s.accepted <= 1 and s.relaxed == s.accepted
        folder = raw / "Dataset505_SAM"
        assert (folder / "contact_sheet.png").stat().st_size > 0
    cand = [json.loads(x) for x in (folder / "candidates.jsonl").read_text(encoding="utf-8").splitlines()]
    scored = [c for r in cand for c in r["candidates"]]
    assert len(scored) == 2 and all(set(c["organs"]) == {"myocardium", "left ventricle"} for c in scored)
    if not (raw / "Dataset505_SAM").exists():
        with pytest.raises(MRGenError, match="no candidate was accepted"):  # a plain rerun says the same
            synthesize(o, pipeline=MRGenPipeline.from_pretrained(generator),
                       filter_backend=SAM2Filter(build_sam2_predictor("tiny", None)))
