"""The benchmark protocol: every row trained and tested the same way, only the training data (and trainer) differ.

Rows come from the row table (rows.py). Identical for every row: one plan (plans.py: planned on the source
dataset, copied), the trainer schedule (a row may swap the trainer family, e.g. the augmented trainer), fold 0 of
nnUNetTrainerMRGen's patient-grouped split (4/5 of the patients train; the rest, real cases only, is nnU-Net's
validation), device, and the test set (the only numbers in the table).
Seeds: seed k drives the synthetic and randomised draws of that repeat and gets its own nnU-Net results root;
nnU-Net's training itself is not seeded, so repeats also measure its run-to-run variance.
Everything lives under `config.out`; `ledger.json` there records every dataset id and the settings behind every
output, so a re-run resumes (finished outputs with the same settings are reused, a training killed midway
continues from its latest checkpoint) and never reuses an output made with other settings.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mrgen_nnunet.benchmark.build import Build as _Build  # noqa: F401 (tests build parts through it)
from mrgen_nnunet.benchmark.build import seed_environment
from mrgen_nnunet.benchmark.config import BenchmarkConfig
from mrgen_nnunet.benchmark.ledger import Ledger
from mrgen_nnunet.benchmark.report import RowResult, write_report
from mrgen_nnunet.benchmark.rows import GENERATED, ROWS, SEED_PARTS, row_trainer
from mrgen_nnunet.data.io import write_text_atomic
from mrgen_nnunet.data.nnunet_raw import list_cases, read_dataset_json
from mrgen_nnunet.data.slice_datasets import check_labelled
from mrgen_nnunet.errors import MRGenError

FOLD = 0


class Progress:
    """One line per event: `[elapsed] message`, plus an estimate of what is left once trainings have finished.
    Plain lines (flushed) so a log file or CI shows the run is alive."""

    def __init__(self, console=None, total_trainings: int = 0, jobs: int = 1):
        self.console, self.t0, self.total, self.jobs = console, time.perf_counter(), total_trainings, jobs
        self.done: list[float] = []
        self._lock = threading.Lock()

    def _stamp(self) -> str:
        s = int(time.perf_counter() - self.t0)
        return f"[{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}]"

    def log(self, text: str) -> None:
        if self.console is not None:
            with self._lock:
                self.console.print(f"{self._stamp()} {text}", highlight=False, markup=False, soft_wrap=True)
                sys.stdout.flush()

    def reused(self, what: str) -> None:
        """A training found done before: it leaves the count of what is left."""
        with self._lock:
            self.total -= 1
        self.log(f"{what}: done before (same settings)")

    def training_finished(self, seconds: float, what: str) -> None:
        self.done.append(seconds)
        left = self.total - len(self.done)
        eta = sum(self.done) / len(self.done) * left / self.jobs
        self.log(f"finished {what} in {seconds / 60:.1f} min; {left} training(s) left, about {eta / 60:.0f} min")


def _generator_index(source_index: Path, target_index: Path, out: Path) -> Path:
    """Source records (with labels) + target records with their labels removed: the generator never sees a
    target label (stage 2 trains on target images with an empty mask)."""
    from mrgen_nnunet.data.records import read_index, write_index

    target = read_index(target_index)
    for r in target:
        r.label_file, r.organs = None, []
    return write_index(read_index(source_index) + target, out)


def _number(x: float | None) -> float:
    """HD95 is undefined (None/NaN) when a structure is absent from prediction or reference."""
    return float("nan") if x is None else float(x)


def _dataset_id(folder: Path) -> int:
    return int(folder.name[len("Dataset"):].split("_")[0])


_display = threading.Lock()  # prediction and evaluation draw rich progress bars: one at a time


def train_and_test(cfg: BenchmarkConfig, row: str, seed: int, dataset: Path, test: Path, plans: str, env: dict,
                   out: Path, labels: dict[str, int], ledger: Ledger, settings: dict, progress: Progress,
                   threads: int | None = None) -> RowResult:
    """Train `dataset` with the shared plan and the row's trainer, predict the test volumes, evaluate.

    The result (out/result.json) is reused when its settings match; a training killed midway continues from its
    latest checkpoint (`nnUNetv2_train --c`). `threads` sets OMP_NUM_THREADS of the training (side-by-side jobs).
    """
    from mrgen_nnunet.evaluation.metrics import evaluate_folder
    from mrgen_nnunet.trainers.nnunet_run import model_folder, predict, train

    trainer = row_trainer(ROWS[row], cfg.trainer)
    done = out / "result.json"
    env = seed_environment(env, seed)
    model = model_folder(env["nnUNet_results"], dataset.name, trainer, plans) / f"fold_{FOLD}"
    key_settings = {"dataset": settings, "trainer": trainer, "plans": plans, "fold": FOLD, "seed": seed,
                    "test": cfg.test.patients, "device": cfg.device}

    def remove():
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(model, ignore_errors=True)

    if ledger.reuse(f"model:{row}:seed{seed}", key_settings, done.is_file(), remove):
        progress.reused(f"row '{row}' seed {seed}")
        return RowResult.from_dict(json.loads(done.read_text(encoding="utf-8")))
    if threads is not None:
        env = {**env, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    if not (model / "checkpoint_final.pth").is_file():
        resume = (model / "checkpoint_latest.pth").is_file()
        progress.log(f"row '{row}' seed {seed}: {'resuming' if resume else 'training'} {trainer} on "
                     f"{dataset.name}" + (f" ({threads} thread(s))" if threads else ""))
        train(_dataset_id(dataset), trainer, FOLD, env, configuration="2d", device=cfg.device, plans=plans,
              extra_args=("--c",) if resume else (), progress=progress.jobs == 1)
    t1 = time.perf_counter()
    with _display:
        pred = out / "predictions"
        predict(_dataset_id(dataset), test / "imagesTr", pred, trainer, env, fold=FOLD, configuration="2d",
                device=cfg.device, plans=plans)
        t2 = time.perf_counter()
        metrics = evaluate_folder(pred, test / "labelsTr", labels, out / "evaluation")
    structures = [s for s in labels if s != "background"]
    dice = {s: float(metrics["mean"][s]["Dice"]) for s in structures}
    hd95 = {s: _number(metrics["mean"][s]["HD95_mm"]) for s in structures}
    cases = {c: {s: _number(v[s]["Dice"]) for s in structures} for c, v in metrics["cases"].items()}
    result = RowResult(row, seed, dice, hd95, len(list_cases(dataset)),
                       {"train": t1 - t0, "predict": t2 - t1, "evaluate": time.perf_counter() - t2},
                       trainer=trainer, cases=cases)
    write_text_atomic(json.dumps(result.to_dict(), indent=1) + "\n", done)
    progress.training_finished(t1 - t0, f"row '{row}' seed {seed} (mean Dice {result.mean_dice:.3f})")
    return result


def run_benchmark(cfg: BenchmarkConfig, console=None, jobs: int = 1,
                  force: bool = False) -> tuple[list[RowResult], dict[str, Path]]:
    """Run every configured row for every seed; write results.{md,json,png} under cfg.out/results.

    `jobs` trainings run side by side, each with cpu_count // jobs threads. Returns (the per-row, per-seed
    results, the report paths). Re-running resumes; `force` rebuilds outputs whose settings changed.
    """
    from mrgen_nnunet.benchmark.plans import shared_plans
    from mrgen_nnunet.trainers.nnunet_run import model_folder, nnunet_environment

    out = cfg.out
    env = nnunet_environment(out / "nnUNet_raw", out / "nnUNet_preprocessed", out / "nnUNet_results", n_proc_da=0)
    # nnU-Net's final validation spawns nnUNet_def_n_proc (default 8) worker processes; on a small CPU machine
    # starting them costs more than the work
    env["nnUNet_def_n_proc"] = "1"
    n_rows = len(set(cfg.rows) | {ROWS[r].base for r in cfg.rows if ROWS[r].base})
    progress = Progress(console, total_trainings=n_rows * len(cfg.seeds), jobs=jobs)
    ledger = Ledger(out / "ledger.json", cfg.first_dataset_id, out / "nnUNet_raw", force=force)
    build = _Build(cfg, env, ledger, progress)
    timings: dict[str, float] = {}

    def timed(stage: str, fn, *args, **kwargs):
        t = time.perf_counter()
        value = fn(*args, **kwargs)
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - t
        return value

    needed = {p for r in cfg.rows for p in ROWS[r].parts} | \
        {p for r in cfg.rows if ROWS[r].base for p in ROWS[ROWS[r].base].parts}
    progress.log(f"{cfg.name}: rows {', '.join(cfg.rows)}; seeds {cfg.seeds}; {jobs} job(s)")
    source = timed("convert", build.convert, "source", cfg.source, True, index=out / "index" / "source.jsonl")
    target = None
    if needed & {"target", "pseudo", *GENERATED}:
        target = timed("convert", build.convert, "target", cfg.target, True, all_slices=True,
                       index=out / "index" / "target.jsonl")
    test = timed("convert", build.convert, "test", cfg.test, False)
    # label-less datasets are refused before anything is trained (the target only needs labels for the oracle)
    for role, dataset in (("the source", source), ("the test set", test)) + \
            ((("the target (oracle row)", target),) if "target" in needed else ()):
        check_labelled(dataset, role)
    meta = read_dataset_json(test)
    labels = {k: int(v) for k, v in meta["labels"].items()}
    if read_dataset_json(source)["labels"] != meta["labels"]:
        raise MRGenError("source and test label maps differ", test, "benchmark datasets with one label map")
    target_modality = meta["mrgen"]["modality"]

    generator = None
    if needed & set(GENERATED):
        index = _generator_index(out / "index" / "source.jsonl", out / "index" / "target.jsonl",
                                 out / "index" / "generator.jsonl")
        generator = timed("generator", build.generator, index, target_modality)
    plans = timed("plan", shared_plans, _dataset_id(source), [], env, cfg.spacing_mm, out / "logs")

    selftrain = [r for r in cfg.rows if ROWS[r].base]
    first = list(dict.fromkeys([ROWS[r].base for r in selftrain if ROWS[r].base not in cfg.rows] +
                               [r for r in cfg.rows if not ROWS[r].base]))
    datasets: dict[tuple[str, int], Path] = {}
    parts_of: dict[int, tuple[dict, dict]] = {}
    for seed in cfg.seeds:
        parts = {"source": source, "target": target}
        part_keys = {"source": "source", "target": "target"}
        if needed & set(GENERATED) and cfg.filter == "nnunet":  # the filter model is the source-only row
            train_and_test(cfg, "source", cfg.seeds[0], source, test, plans, env,
                           out / "rows" / "source" / f"seed{cfg.seeds[0]}", labels, ledger,
                           build.settings["source"], progress)
        for part in SEED_PARTS:
            if part not in needed:
                continue
            part_keys[part] = f"part:{part}:seed{seed}"
            if part in GENERATED:
                progress.log(f"synthesising the target sequence from the source {'labels' if part == 'synthetic' else 'slices'} "
                             f"(seed {seed}, mode {'mask' if part == 'synthetic' else 'translate'}, filter: {cfg.filter})")
                parts[part] = timed("synthesize", build.synthetic, seed, source, generator, target_modality, part)
            else:
                parts[part] = timed("augment", build.randomised, part, seed, source)
        for row in first:
            datasets[(row, seed)] = timed("merge", build.row, row, seed, parts, part_keys)
        parts_of[seed] = (parts, part_keys)

    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else None

    def train_rows(items: dict[tuple[str, int], Path], rows: list[str]) -> list[RowResult]:
        others = sorted({_dataset_id(d) for d in items.values()} - {_dataset_id(source)})
        progress.log(f"planning once on {source.name} ({cfg.spacing_mm or 'native'} mm in-plane), copying the "
                     f"plan to {len(others)} dataset(s)")
        timed("plan", shared_plans, _dataset_id(source), others, env, cfg.spacing_mm, out / "logs")

        def task(item):
            (row, seed), dataset = item
            key = f"row:{row}:seed{seed}"
            result = train_and_test(cfg, row, seed, dataset, test, plans, env, out / "rows" / row / f"seed{seed}",
                                    labels, ledger, build.settings[key], progress, threads)
            build.settings[f"model:{row}:seed{seed}"] = ledger.entries[f"model:{row}:seed{seed}"]["settings"]
            return result

        # row-major order: a run stopped early has every seed of its first rows (what paired statistics need)
        order = sorted(items.items(), key=lambda kv: (rows.index(kv[0][0]), cfg.seeds.index(kv[0][1])))
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            done = list(pool.map(task, order))
        timings["train+test"] = timings.get("train+test", 0.0) + time.perf_counter() - t
        return done

    results = train_rows(datasets, first)
    if selftrain:  # second round: the base rows' models label the target training images
        second: dict[tuple[str, int], Path] = {}
        for seed in cfg.seeds:
            parts, part_keys = parts_of[seed]
            for row in selftrain:
                base = ROWS[row].base
                model = model_folder(seed_environment(env, seed)["nnUNet_results"], datasets[(base, seed)].name,
                                     row_trainer(ROWS[base], cfg.trainer), plans)
                part_keys["pseudo"] = f"part:pseudo:{base}:seed{seed}"
                parts["pseudo"] = timed("pseudo-label", build.pseudo, seed, base, model, target, test)
                second[(row, seed)] = timed("merge", build.row, row, seed, parts, part_keys)
        results += train_rows(second, selftrain)
    order = {row: i for i, row in enumerate(cfg.rows)}
    results.sort(key=lambda r: (order.get(r.row, -1), cfg.seeds.index(r.seed)))
    notes = (f"Trainer schedule {cfg.trainer} (per-row family in the row table), fold {FOLD}, plan `{plans}` "
             f"(planned on the source dataset, copied to every row), device {cfg.device}, seeds {cfg.seeds}, "
             f"filter {cfg.filter}, synthesis profile {cfg.profile}, {jobs} job(s). Test set: {test.name} "
             f"({len(list_cases(test))} volumes). Stage wall times this run (s): "
             + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()) + ".\n")
    paths = write_report(results, out / "results", f"{cfg.name}: Dice on held-out target volumes", notes)
    return results, paths


def report_finished(cfg: BenchmarkConfig) -> dict[str, Path]:
    """Write results.{md,json,png} from the rows/seeds of `cfg` that have finished so far (nothing is trained):
    what a long run has measured while it is still going, or after it was stopped."""
    results = [RowResult.from_dict(json.loads(f.read_text(encoding="utf-8")))
               for row in cfg.rows for seed in cfg.seeds
               if (f := cfg.out / "rows" / row / f"seed{seed}" / "result.json").is_file()]
    if not results:
        raise MRGenError("no finished row yet", cfg.out / "rows", "run the benchmark first")
    done = sorted({(r.row, r.seed) for r in results})
    missing = [(row, seed) for row in cfg.rows for seed in cfg.seeds if (row, seed) not in done]
    notes = (f"Finished so far: {len(done)} of {len(cfg.rows) * len(cfg.seeds)} row x seed trainings"
             + (f"; not yet run: {', '.join(f'{r} seed {s}' for r, s in missing)}" if missing else "") + ".\n")
    return write_report(results, cfg.out / "results", f"{cfg.name}: Dice on held-out target volumes", notes)

