"""The benchmark protocol: every row trained and tested the same way, only the training images differ.

Rows (config `rows`, see config.ROWS):
  source                 real source slices with labels (nnU-Net trained on bSSFP, tested on LGE)
  synthetic              generated target-sequence slices only (MRGen protocol)
  synthetic+source       both, sampled real:synthetic = `real_to_synthetic_ratio`
  labelmap               source + `copies` label-map randomised copies per slice (SynthSeg-style)
  remap                  source + `copies` intensity-remapped copies per slice (GIN/BigAug-style)
  synthetic+source+remap all three (does generation add to randomisation?)
  oracle                 real target slices with their labels (an upper bound, when labels are given)

Identical for every row: one plan (plans.py: planned on the source dataset, copied), the trainer, fold 0 of
nnUNetTrainerMRGen's patient-grouped split (4/5 of the patients train; the rest, real cases only, is nnU-Net's
validation; fold "all" would make nnU-Net's final validation predict every training slice, which costs more
than training at CPU-profile budgets), device, and the test set (the only numbers in the table).
Seeds: seed k drives the synthetic and randomised draws of that repeat; nnU-Net's training itself is not seeded
by nnU-Net, so repeats also measure its run-to-run variance. Everything lives under `config.out`; finished steps
(datasets, plans, trained rows, evaluations) are found and skipped on a re-run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from mrgen_nnunet.benchmark.config import ROW_TITLES, BenchmarkConfig, DataSpec
from mrgen_nnunet.benchmark.report import RowResult, write_report
from mrgen_nnunet.data.io import write_text_atomic
from mrgen_nnunet.data.nnunet_raw import find_dataset, list_cases, read_dataset_json
from mrgen_nnunet.errors import MRGenError

# which datasets each row trains on, and whether the real:synthetic ratio applies
ROW_PARTS = {
    "source": (("source",), False),
    "synthetic": (("synthetic",), False),
    "synthetic+source": (("source", "synthetic"), True),
    "labelmap": (("source", "labelmap"), False),
    "remap": (("source", "remap"), False),
    "synthetic+source+remap": (("source", "synthetic", "remap"), True),
    "oracle": (("target",), False),
}
FOLD = 0


PARTS = ("synthetic", "labelmap", "remap")  # generated/randomised datasets that rows are merged from


@dataclass
class Ids:
    """Dataset ids of one benchmark, from `first`: shared datasets, then a block of 10 per seed:
    the 3 parts, then the 7 rows (a row made of one dataset reuses that dataset and leaves its id unused)."""

    first: int

    def shared(self, what: str) -> int:
        return self.first + ("source", "target", "test").index(what)

    def part(self, what: str, seed_index: int) -> int:
        return self.first + 10 * (seed_index + 1) + PARTS.index(what)

    def row(self, what: str, seed_index: int) -> int:
        return self.first + 10 * (seed_index + 1) + len(PARTS) + tuple(ROW_PARTS).index(what)


def _log(console, text: str) -> None:
    if console is not None:
        console.print(text)


def _convert(spec: DataSpec, raw: Path, dataset_id: int, name: str, as_slices: bool, all_slices: bool = False,
             index: Path | None = None) -> Path:
    """The converted dataset (converted now unless it already exists with this id)."""
    from mrgen_nnunet.dataset_converters import get_converter

    if list(raw.glob(f"Dataset{dataset_id:03d}_*")):
        return find_dataset(raw, dataset_id)
    return get_converter(spec.layout)(spec.root, raw, dataset_id, name=name, sequence=spec.sequence,
                                      patients=spec.patients, as_slices=as_slices, all_slices=all_slices,
                                      index=index)


def _generator_index(source_index: Path, target_index: Path, out: Path) -> Path:
    """Source records (with labels) + target records with their labels removed: the generator never sees a
    target label (stage 2 trains on target images with an empty mask)."""
    from mrgen_nnunet.data.records import read_index, write_index

    target = read_index(target_index)
    for r in target:
        r.label_file, r.organs = None, []
    return write_index(read_index(source_index) + target, out)


def _generator(cfg: BenchmarkConfig, index: Path, target_modality: str, console) -> Path:
    from mrgen_nnunet.generator.train import train_generator

    if cfg.generator != "train":
        return Path(cfg.generator)
    folder = cfg.out / "generator"
    if (folder / "mrgen_generator.json").is_file() and (folder / "controlnet").is_dir():
        return folder
    _log(console, f"training the '{cfg.generator_preset}' generator ({cfg.generator_steps} steps per stage)")
    return train_generator(index, folder, preset=cfg.generator_preset, target_modality=target_modality,
                           steps=cfg.generator_steps, resolution=cfg.generator_resolution)


def _synthesize(cfg: BenchmarkConfig, source: Path, generator: Path, target_modality: str, raw: Path,
                dataset_id: int, seed: int, env: dict) -> Path:
    from mrgen_nnunet.synthesis.run import SynthesisOptions, synthesize

    if list(raw.glob(f"Dataset{dataset_id:03d}_*")):
        return find_dataset(raw, dataset_id)
    synthesize(SynthesisOptions(
        target=target_modality, source=str(source), generator=str(generator), out_raw=str(raw),
        out_dataset=dataset_id, name=f"synthetic_s{seed}", samples_per_mask=cfg.keep, max_tries=cfg.candidates,
        steps=cfg.inference_steps, guidance=cfg.guidance_scale, seed=seed, filter=cfg.filter, profile=cfg.profile,
        filter_model=str(_filter_model(cfg, env)) if cfg.filter == "nnunet" else None, device=cfg.device))
    return find_dataset(raw, dataset_id)


def seed_environment(env: dict, seed: int) -> dict:
    """`env` with nnU-Net's results root for one seed, <nnUNet_results>/seed<seed>. nnU-Net names a model by
    dataset, trainer, plans and fold only, and rows whose dataset does not depend on the seed (source, oracle)
    must still train once per seed (with one shared root, seeds 1.. silently reused seed 0's model)."""
    return {**env, "nnUNet_results": str(Path(env["nnUNet_results"]) / f"seed{seed}")}


def _filter_model(cfg: BenchmarkConfig, env: dict) -> Path:
    """The `nnunet` filter's model: the source-only row's trained model (first seed), trained first if needed."""
    from mrgen_nnunet.benchmark.plans import plans_name

    raw = find_dataset(env["nnUNet_raw"], Ids(cfg.first_dataset_id).shared("source"))
    results = Path(seed_environment(env, cfg.seeds[0])["nnUNet_results"])
    return results / raw.name / f"{cfg.trainer}__{plans_name(cfg.spacing_mm)}__2d"


def _augmented(source: Path, raw: Path, dataset_id: int, style: str, copies: int, seed: int) -> Path:
    from mrgen_nnunet.benchmark.augment import augment_slice_dataset

    if list(raw.glob(f"Dataset{dataset_id:03d}_*")):
        return find_dataset(raw, dataset_id)
    return augment_slice_dataset(source, raw, dataset_id, f"{style}_s{seed}", style, copies, seed)


def _row_dataset(row: str, parts: dict[str, Path], raw: Path, dataset_id: int, ratio: float, seed: int) -> Path:
    from mrgen_nnunet.benchmark.datasets import merge_slice_datasets

    names, uses_ratio = ROW_PARTS[row]
    if len(names) == 1:
        return parts[names[0]]
    if list(raw.glob(f"Dataset{dataset_id:03d}_*")):
        return find_dataset(raw, dataset_id)
    return merge_slice_datasets(raw, dataset_id, f"{row.replace('+', '_')}_s{seed}", [parts[n] for n in names],
                                ratio if uses_ratio else None)


def _number(x: float | None) -> float:
    """HD95 is undefined (None/NaN) when a structure is absent from prediction or reference."""
    return float("nan") if x is None else float(x)


def _dataset_id(folder: Path) -> int:
    return int(folder.name[len("Dataset"):].split("_")[0])


def _train_and_test(cfg: BenchmarkConfig, row: str, seed: int, dataset: Path, test: Path, plans: str, env: dict,
                    out: Path, labels: dict[str, int]) -> RowResult:
    """Train `dataset` with the shared plan, predict the test volumes, evaluate; cached in out/result.json."""
    from mrgen_nnunet.evaluation.metrics import evaluate_folder
    from mrgen_nnunet.trainers.nnunet_run import predict, train

    done = out / "result.json"
    if done.is_file():
        return RowResult.from_dict(json.loads(done.read_text(encoding="utf-8")))
    env = seed_environment(env, seed)
    dataset_id = _dataset_id(dataset)
    model = Path(env["nnUNet_results"]) / dataset.name / f"{cfg.trainer}__{plans}__2d" / f"fold_{FOLD}"
    t0 = time.perf_counter()
    if not (model / "checkpoint_final.pth").is_file():
        train(dataset_id, cfg.trainer, FOLD, env, configuration="2d", device=cfg.device, plans=plans)
    t1 = time.perf_counter()
    pred = out / "predictions"
    predict(dataset_id, test / "imagesTr", pred, cfg.trainer, env, fold=FOLD, configuration="2d",
            device=cfg.device, plans=plans)
    t2 = time.perf_counter()
    metrics = evaluate_folder(pred, test / "labelsTr", labels, out / "evaluation")
    dice = {s: float(metrics["mean"][s]["Dice"]) for s in labels if s != "background"}
    hd95 = {s: _number(metrics["mean"][s]["HD95_mm"]) for s in labels if s != "background"}
    result = RowResult(row, seed, dice, hd95, len(list_cases(dataset)),
                       {"train": t1 - t0, "predict": t2 - t1, "evaluate": time.perf_counter() - t2})
    write_text_atomic(json.dumps(result.to_dict(), indent=1) + "\n", done)
    return result


def run_benchmark(cfg: BenchmarkConfig, console=None) -> tuple[list[RowResult], dict[str, Path]]:
    """Run every configured row for every seed; write results.{md,json,png} under cfg.out/results.

    Returns (the per-row, per-seed results, the report paths). Re-running resumes: finished steps are skipped.
    """
    from mrgen_nnunet.benchmark.plans import shared_plans
    from mrgen_nnunet.trainers.nnunet_run import nnunet_environment

    out = cfg.out
    env = nnunet_environment(out / "nnUNet_raw", out / "nnUNet_preprocessed", out / "nnUNet_results", n_proc_da=0)
    # nnU-Net's final validation spawns nnUNet_def_n_proc (default 8) worker processes; on a small CPU machine
    # starting them costs more than the work
    env["nnUNet_def_n_proc"] = "1"
    raw, ids = out / "nnUNet_raw", Ids(cfg.first_dataset_id)
    timings: dict[str, float] = {}

    def timed(stage: str, fn, *args, **kwargs):
        t = time.perf_counter()
        value = fn(*args, **kwargs)
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - t
        return value

    needs_generator = any("synthetic" in r for r in cfg.rows)
    _log(console, "converting source, target and test data")
    source = timed("convert", _convert, cfg.source, raw, ids.shared("source"), "source", True,
                   index=out / "index" / "source.jsonl")
    target = None
    if needs_generator or "oracle" in cfg.rows:
        target = timed("convert", _convert, cfg.target, raw, ids.shared("target"), "target", True,
                       all_slices=True, index=out / "index" / "target.jsonl")
    test = timed("convert", _convert, cfg.test, raw, ids.shared("test"), "test", False)
    meta = read_dataset_json(test)
    labels = {k: int(v) for k, v in meta["labels"].items()}
    if read_dataset_json(source)["labels"] != meta["labels"]:
        raise MRGenError("source and test label maps differ", test, "benchmark datasets with one label map")
    target_modality = meta["mrgen"]["modality"]

    generator = None
    if needs_generator:
        index = _generator_index(out / "index" / "source.jsonl", out / "index" / "target.jsonl",
                                 out / "index" / "generator.jsonl")
        generator = timed("generator", _generator, cfg, index, target_modality, console)

    # row datasets per seed
    datasets: dict[tuple[str, int], Path] = {}
    for k, seed in enumerate(cfg.seeds):
        parts = {"source": source, "target": target}
        if any("synthetic" in r for r in cfg.rows):
            if cfg.filter == "nnunet":  # the filter model is the source-only row: plan and train it first
                plans = shared_plans(_dataset_id(source), [], env, cfg.spacing_mm, out / "logs")
                _train_and_test(cfg, "source", cfg.seeds[0], source, test, plans, env,
                                out / "rows" / "source" / f"seed{cfg.seeds[0]}", labels)
            _log(console, f"synthesising the target sequence from the source labels (seed {seed}, "
                          f"filter: {cfg.filter})")
            parts["synthetic"] = timed("synthesize", _synthesize, cfg, source, generator, target_modality, raw,
                                       ids.part("synthetic", k), seed, env)
        for style in ("labelmap", "remap"):
            if any(style in r for r in cfg.rows):
                parts[style] = timed("augment", _augmented, source, raw, ids.part(style, k), style,
                                     cfg.copies, seed)
        for row in cfg.rows:
            datasets[(row, seed)] = timed("merge", _row_dataset, row, parts, raw, ids.row(row, k),
                                          cfg.real_to_synthetic_ratio, seed)

    _log(console, f"planning once on {source.name} ({cfg.spacing_mm or 'native'} mm in-plane), copying the plan")
    others = sorted({_dataset_id(d) for d in datasets.values()} - {_dataset_id(source)})
    plans = timed("plan", shared_plans, _dataset_id(source), others, env, cfg.spacing_mm, out / "logs")

    results = []
    for (row, seed), dataset in datasets.items():
        _log(console, f"row '{ROW_TITLES[row]}', seed {seed}: training {cfg.trainer} on {dataset.name}")
        results.append(_train_and_test(cfg, row, seed, dataset, test, plans, env,
                                       out / "rows" / row / f"seed{seed}", labels))
    notes = (f"Trainer {cfg.trainer}, fold {FOLD}, plan `{plans}` (planned on {source.name}, copied to every "
             f"row), device {cfg.device}, seeds {cfg.seeds}, filter {cfg.filter}, synthesis profile {cfg.profile}. Test set: {test.name} "
             f"({len(list_cases(test))} volumes). Stage wall times (s): "
             + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()) + ".\n")
    paths = write_report(results, out / "results", f"{cfg.name}: Dice on held-out target volumes", notes)
    return results, paths
