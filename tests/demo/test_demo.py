"""The demo: its built-in config, bad input, and (slow) the whole chain end to end at test size."""

import json
import math
import sys
from pathlib import Path

import pytest

from mrgen_nnunet.benchmark.config import patient_list
from mrgen_nnunet.demo.run import TEST, demo_config, run_demo
from mrgen_nnunet.errors import MRGenError


def test_demo_config_on_phantom(tmp_path):
    cfg = demo_config(tmp_path, None, TEST)
    assert (tmp_path / "phantom" / "bSSFP" / "label_4.nii.gz").is_file()
    assert patient_list(cfg.source) == [1, 2, 3] and patient_list(cfg.test) == [4]
    assert cfg.source.sequence == "bSSFP" and cfg.test.sequence == "LGE" and cfg.filter == "none"
    assert cfg.generator == "train" and cfg.generator_preset == "tiny"


def test_demo_real_data_layout(tmp_path):
    cfg = demo_config(tmp_path, ("mscmrseg", tmp_path / "d"), TEST)
    assert patient_list(cfg.source) == list(range(1, 21)) and patient_list(cfg.test) == list(range(21, 26))
    with pytest.raises(MRGenError, match="knows the 'mscmrseg' layout"):
        demo_config(tmp_path, ("chaos", tmp_path), TEST)


def test_demo_cli_bad_layout_is_one_line(tmp_path, capsys):
    from mrgen_nnunet.cli.main import main

    assert main(["demo", "--out", str(tmp_path / "o"), "--data", "chaos", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mrgen-nnunet: error:")


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, monkeypatch):
    """phantom -> convert -> tiny generator -> synthesize -> shared plan -> nnU-Net -> Dice, then a resume."""
    monkeypatch.setattr(sys, "argv", ["x"])
    out = run_demo(tmp_path / "demo", size=TEST)
    rows = {r.row: r for r in out["results"]}
    assert set(rows) == {"source", "synthetic+source"}
    for r in rows.values():
        assert set(r.dice) == {"myocardium", "left ventricle", "right ventricle"}
        assert all(0.0 <= d <= 1.0 for d in r.dice.values()) and r.train_cases > 0
    data = json.loads(out["report"]["json"].read_text(encoding="utf-8"))
    assert [r["row"] for r in data["runs"]] == ["source", "synthetic+source"]
    assert out["contact_sheet"] is not None and out["contact_sheet"].is_file()
    # every row shares one plan, copied from the source dataset
    pre = tmp_path / "demo" / "nnUNet_preprocessed"
    plans = [json.loads(p.read_text(encoding="utf-8"))["configurations"]["2d"]["patch_size"] for p in pre.glob("*/mrgenPlans.json")]
    assert len(plans) >= 2 and all(p == plans[0] for p in plans)
    again = run_demo(tmp_path / "demo", size=TEST)  # resume: nothing is retrained, same numbers
    assert [r.mean_dice for r in again["results"]] == [r.mean_dice for r in out["results"]]
    assert not any(math.isnan(r.mean_dice) for r in again["results"])
    assert Path(out["report"]["plot"]).is_file()
