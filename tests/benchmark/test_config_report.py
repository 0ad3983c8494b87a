"""Benchmark config parsing (the shipped MS-CMRSeg config, bad keys) and the results table/plot."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mrgen_nnunet.benchmark.config import load_config, patient_list
from mrgen_nnunet.benchmark.report import RowResult, markdown_table, summarise, write_report
from mrgen_nnunet.benchmark.rows import DEFAULT_ROWS as ROWS
from mrgen_nnunet.errors import MRGenError

REPO = Path(__file__).resolve().parents[2]


def test_shipped_mscmrseg_config():
    cfg = load_config(REPO / "benchmarks" / "configs" / "mscmrseg_bssfp_to_lge.toml")
    assert cfg.source.sequence == "bSSFP" and patient_list(cfg.source) == list(range(1, 21))
    assert cfg.target.sequence == "LGE" and patient_list(cfg.target) == list(range(1, 21))
    assert cfg.test.sequence == "LGE" and patient_list(cfg.test) == [21, 22, 23, 24, 25]
    assert not set(patient_list(cfg.test)) & set(patient_list(cfg.target))  # test patients never train
    assert cfg.source.root == (REPO.parent / "shared" / "data" / "mscmrseg").resolve()  # relative to the file
    assert cfg.rows == list(ROWS) and cfg.spacing_mm == 2.5


def _write(tmp_path, text):
    base = '''name = "x"\nout = "o"\n'''
    tables = "".join(f'[{k}]\nlayout = "mscmrseg"\nroot = "d"\nsequence = "LGE"\npatients = "1-2"\n'
                     for k in ("source", "target", "test"))
    p = tmp_path / "c.toml"
    p.write_text(base + text + tables)
    return p


@pytest.mark.parametrize("text, match", [
    ('trainr = "x"\n', "unknown config key"),
    ('rows = ["source", "bogus"]\n', "unknown row"),
    ('filter = "clip"\n', "unknown filter"),
    ('seeds = []\n', "seeds is empty"),
    ('profile = "turbo"\n', "unknown profile"),
])
def test_bad_config(tmp_path, text, match):
    with pytest.raises(MRGenError, match=match):
        load_config(_write(tmp_path, text))


def test_bad_patient_range_and_missing_file(tmp_path):
    p = _write(tmp_path, "").read_text(encoding="utf-8").replace('patients = "1-2"', 'patients = "1-x"', 1)
    (tmp_path / "d.toml").write_text(p)
    with pytest.raises(MRGenError, match="bad patient range"):
        load_config(tmp_path / "d.toml")
    with pytest.raises(MRGenError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_summary_mean_sd_table_and_plot(tmp_path):
    runs = [RowResult("source", 0, {"myo": 0.2, "lv": 0.6}, {"myo": 10.0, "lv": float("nan")}),
            RowResult("source", 1, {"myo": 0.4, "lv": 0.8}, {"myo": 20.0, "lv": 5.0}),
            RowResult("remap", 0, {"myo": 0.7, "lv": 0.9}, {"myo": 3.0, "lv": 2.0}, train_cases=12,
                      seconds={"train": 42.0})]
    s = summarise(runs)
    assert s["source"]["dice"]["myo"]["mean"] == pytest.approx(0.3)
    assert s["source"]["dice"]["myo"]["sd"] == pytest.approx(math.sqrt(0.02))
    assert s["source"]["mean_dice"]["mean"] == pytest.approx(0.5)
    assert s["source"]["hd95"]["lv"]["mean"] == 5.0  # NaN (absent structure) left out of the mean
    assert s["remap"]["dice"]["myo"]["sd"] is None  # one seed: no sd
    table = markdown_table(s)
    assert "0.300 ± 0.141" in table and "| source + intensity-remapped (GIN/BigAug-style) | 0.800 |" in table
    paths = write_report(runs, tmp_path / "r", "t")
    assert paths["plot"].stat().st_size > 1000
    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert len(data["runs"]) == 3 and data["runs"][2]["mean_dice"] == pytest.approx(0.8)


def test_cpu_config_has_every_row():
    cfg = load_config(REPO / "benchmarks" / "configs" / "mscmrseg_cpu.toml")
    assert list(cfg.rows) == list(ROWS) and patient_list(cfg.test) == [21, 22, 23, 24, 25]


def test_each_seed_trains_its_own_model(tmp_path):
    # nnU-Net names a model by dataset/trainer/plans/fold: the source row (same dataset for every seed) reused
    # seed 0's model for seeds 1.. when all seeds shared one results root
    from mrgen_nnunet.benchmark.build import seed_environment

    env = {"nnUNet_raw": str(tmp_path / "raw"), "nnUNet_results": str(tmp_path / "res")}
    roots = {seed_environment(env, s)["nnUNet_results"] for s in (0, 1, 2)}
    assert len(roots) == 3 and env["nnUNet_results"] == str(tmp_path / "res")  # the caller's env is untouched
    from mrgen_nnunet.benchmark.build import Build as _Build
    from mrgen_nnunet.benchmark.ledger import Ledger
    from mrgen_nnunet.benchmark.training import Progress

    (tmp_path / "raw").mkdir(parents=True)
    cfg = load_config(REPO / "benchmarks" / "configs" / "mscmrseg_cpu.toml")
    cfg.seeds = [3, 4]
    ledger = Ledger(tmp_path / "ledger.json", 700, tmp_path / "raw")
    (tmp_path / "raw" / f"Dataset{ledger.dataset_id('source'):03d}_source").mkdir()
    model = _Build(cfg, env, ledger, Progress()).filter_model()
    assert model.parent.parent == tmp_path / "res" / "seed3" and model.parent.name == "Dataset700_source"


def test_paired_difference_against_source_with_bootstrap_interval():
    from mrgen_nnunet.benchmark.report import paired_difference

    rng = np.random.default_rng(0)
    base = {f"v{i}": rng.uniform(0.3, 0.9) for i in range(5)}  # volume difficulty, shared by both rows

    def result(row, seed, shift):
        cases = {c: {"a": v + shift + rng.normal(0, 0.01), "b": v + shift} for c, v in base.items()}
        return RowResult(row, seed, {"a": 0.5, "b": 0.5}, {"a": 1.0, "b": 1.0}, cases=cases)

    source = [result("source", s, 0.0) for s in (0, 1)]
    better = [result("aug", s, 0.1) for s in (0, 1)]
    d = paired_difference(better, source)
    assert d["n"] == 10 and d["mean"] == pytest.approx(0.1, abs=0.01) and d["lo"] > 0.08 and d["hi"] < 0.12
    assert paired_difference([result("x", 7, 0.0)], source) is None  # no shared seed: no pairs
    summary = summarise(source + better)
    assert summary["source"]["vs_source"] is None and summary["aug"]["vs_source"]["n"] == 10
    assert f"{summary['aug']['vs_source']['mean']:+.3f} [" in markdown_table(summary)


@pytest.mark.parametrize("line, message", [
    ('seeds = "0"', "'seeds' must be a list of int"),
    ('rows = "source"', "'rows' must be a list of str"),
    ("out = 5", "'out' must be str"),
    ('generator_steps = "many"', "'generator_steps' must be int"),
    ("translate_strength = 2.0", "translate_strength"),
    ('translate_method = "cyclegan"', "translate_method"),
    ("copies = 0", "copies"),
    ("generator_minutes = -1.0", "generator_minutes"),
    ("pseudo_label_rules = {slice_confidence = 3.0}", "slice_confidence"),
])
def test_config_types_and_ranges_are_checked_at_load(tmp_path, line, message):
    text = (REPO / "benchmarks" / "configs" / "mscmrseg_quality.toml").read_text(encoding="utf-8")
    key = line.split(" =")[0]
    kept = [ln for ln in text.splitlines() if not ln.startswith(f"{key} =")]
    at = kept.index("[source]")
    bad = tmp_path / "bad.toml"
    bad.write_text("\n".join(kept[:at] + [line] + kept[at:]) + "\n", encoding="utf-8")
    with pytest.raises(MRGenError, match=message):
        load_config(bad)


def test_report_only_writes_the_table_of_finished_rows(tmp_path):
    from mrgen_nnunet.benchmark.protocol import report_finished

    cfg = load_config(REPO / "benchmarks" / "configs" / "mscmrseg_quality.toml")
    cfg.out, cfg.rows, cfg.seeds = tmp_path, ["source", "source+aug"], [0, 1]
    with pytest.raises(MRGenError, match="no finished row"):
        report_finished(cfg)
    for row, seed, d in (("source", 0, 0.4), ("source+aug", 0, 0.8)):
        folder = tmp_path / "rows" / row / f"seed{seed}"
        folder.mkdir(parents=True)
        r = RowResult(row, seed, {"a": d}, {"a": 1.0}, cases={"v1": {"a": d}, "v2": {"a": d}})
        (folder / "result.json").write_text(json.dumps(r.to_dict()), encoding="utf-8")
    paths = report_finished(cfg)
    text = paths["markdown"].read_text(encoding="utf-8")
    assert "2 of 4" in text and "source seed 1, source+aug seed 1" in text and "+0.400 [" in text


@pytest.mark.parametrize("config", sorted((REPO / "benchmarks" / "configs").glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_names_a_trainer_class_for_each_of_its_rows(config):
    """A shipped config whose schedule has no class for one of its rows' trainer families (e.g. a 50-epoch schedule
    and an IPA row) would fail only when that row starts training; here it fails at once."""
    from mrgen_nnunet.benchmark.rows import ROWS as ALL_ROWS
    from mrgen_nnunet.benchmark.rows import row_trainer
    from mrgen_nnunet.trainers import trainer_classes

    cfg = load_config(config)
    known = trainer_classes()
    assert cfg.rows, config.name
    for row in cfg.rows:
        assert row_trainer(ALL_ROWS[row], cfg.trainer) in known, (config.name, row)
