"""The `selftrain` row end to end on the tiny phantom: the base row's model pseudo-labels the target training
images (never the test patients), the merged dataset marks them, and nnU-Net never validates on them."""

from __future__ import annotations

import json
from dataclasses import replace

from mrgen_nnunet.benchmark.protocol import run_benchmark
from mrgen_nnunet.data.nnunet_raw import find_dataset, read_dataset_json
from mrgen_nnunet.demo.run import TEST, demo_config

KEEP_ALL = {"pixel_confidence": 0.0, "slice_confidence": 0.0, "min_foreground": 0.0, "min_component_share": 0.0}


def test_selftrain_row(tmp_path):
    cfg = demo_config(tmp_path / "bench", None, replace(TEST, rows=("selftrain", "selftrain-ft"),
                                                        trainer="nnUNetTrainerMRGen_1epochs_10it"))
    cfg.pseudo_label_rules = KEEP_ALL  # a 10-iteration model is unsure of everything: keep all for the test
    results, paths = run_benchmark(cfg)
    assert [r.row for r in results] == ["source+aug", "selftrain", "selftrain-ft"]  # the base row is trained first
    assert results[1].trainer == results[2].trainer == "nnUNetTrainerMRGenAug_1epochs_10it"
    # the fine-tuned row really started from the base model's weights (nnU-Net says so in its training log)
    finetuned_log, = (cfg.out / "nnUNet_results" / "seed0").glob("Dataset*finetune*/*_train.log")
    assert "Loading pretrained weights from file" in finetuned_log.read_text(encoding="utf-8")

    ledger = json.loads((cfg.out / "ledger.json").read_text(encoding="utf-8"))
    raw = cfg.out / "nnUNet_raw"
    pseudo = find_dataset(raw, ledger["part:pseudo:source+aug:seed0"]["id"])
    patients = set(read_dataset_json(pseudo)["mrgen"]["patients"].values())
    test_patients = set(read_dataset_json(find_dataset(raw, ledger["test"]["id"]))["mrgen"]["patients"].values())
    assert patients and not patients & test_patients
    assert all(p.startswith("LGE") for p in patients)  # real target images, the labels the model's

    merged = read_dataset_json(find_dataset(raw, ledger["row:source+pseudo:seed0"]["id"]))
    assert merged["labels"]["ignore"] == 4 and len(merged["mrgen"]["pseudo_cases"]) > 0
    splits = json.loads(next((cfg.out / "nnUNet_preprocessed").glob("Dataset*source_pseudo*/splits_final.json"))
                        .read_text(encoding="utf-8"))
    assert all(not set(s["val"]) & set(merged["mrgen"]["pseudo_cases"]) for s in splits)
    assert "source + pseudo-labelled target" in paths["markdown"].read_text(encoding="utf-8")
