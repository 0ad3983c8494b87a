"""The benchmark's synthesis step follows the config's `profile`: the reference profile samples with MRGen's
settings (DDIM 50, one mask per generator call) unless the config sets them, and the summary says so."""

from __future__ import annotations

from synthesis_helpers import make_source_dataset, read_json

from mrgen_nnunet.benchmark.build import Build as _Build
from mrgen_nnunet.benchmark.config import BenchmarkConfig, DataSpec
from mrgen_nnunet.benchmark.ledger import Ledger
from mrgen_nnunet.benchmark.training import Progress


def _config(tmp_path, **kw) -> BenchmarkConfig:
    spec = DataSpec("mscmrseg", tmp_path, "bSSFP", "1")
    return BenchmarkConfig(name="t", out=tmp_path, source=spec, target=spec, test=spec, candidates=1, keep=1, **kw)


def _synthesize(cfg: BenchmarkConfig, source, generator, raw, first_id: int):
    raw.mkdir(parents=True, exist_ok=True)
    build = _Build(cfg, {"nnUNet_raw": str(raw)}, Ledger(raw / f"ledger{first_id}.json", first_id, raw), Progress())
    build.settings["source"] = {"source": str(source)}
    return build.synthetic(0, source, generator, "LGE")


def test_benchmark_synthesis_uses_the_profile(tmp_path, generator):
    source = make_source_dataset(tmp_path / "src", n_patients=1, slices=2)
    raw = tmp_path / "raw"
    ref = _synthesize(_config(tmp_path, profile="reference"), source, generator, raw, 801)
    settings = read_json(ref / "summary.json")["settings"]
    assert (settings["profile"], settings["scheduler"], settings["steps"]) == ("reference", "ddim", 50)
    assert settings["masks_per_batch"] == 1 and settings["early_stop"] is False
    fast = _synthesize(_config(tmp_path, profile="fast", inference_steps=3), source, generator, raw, 802)
    settings = read_json(fast / "summary.json")["settings"]
    assert (settings["profile"], settings["scheduler"], settings["steps"]) == ("fast", "dpm", 3)  # explicit wins
    assert read_json(fast / "dataset.json")["numTraining"] == read_json(ref / "dataset.json")["numTraining"] == 1
