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
import threading
import time
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from pathlib import Path

from mrgen_nnunet.benchmark.build import Build, seed_environment
from mrgen_nnunet.benchmark.config import BenchmarkConfig
from mrgen_nnunet.benchmark.ledger import Ledger
from mrgen_nnunet.benchmark.report import RowResult, write_report
from mrgen_nnunet.benchmark.rows import GENERATED, ROWS, SEED_PARTS, rounds, row_trainer
from mrgen_nnunet.benchmark.training import (
    FOLD,
    Progress,
    dataset_id_of,
    gather,
    torch_threads,
    train_and_test,
)
from mrgen_nnunet.data.nnunet_raw import list_cases, read_dataset_json
from mrgen_nnunet.data.slice_datasets import check_labelled
from mrgen_nnunet.environment import usable_cpus
from mrgen_nnunet.errors import MRGenError


def _generator_index(source_index: Path, target_index: Path, out: Path) -> Path:
    """Source records (with labels) + target records with their labels removed: the generator never sees a
    target label (stage 2 trains on target images with an empty mask)."""
    from mrgen_nnunet.data.records import read_index, write_index

    target = read_index(target_index)
    for r in target:
        r.label_file, r.organs = None, []
    return write_index(read_index(source_index) + target, out)


def run_benchmark(cfg: BenchmarkConfig, console=None, jobs: int = 1,
                  force: bool = False) -> tuple[list[RowResult], dict[str, Path]]:
    """Run every configured row for every seed; write results.{md,json,png} under cfg.out/results.

    `jobs` trainings run side by side, each with cpu_count // jobs threads. Returns (the per-row, per-seed
    results, the report paths). Re-running resumes; `force` rebuilds outputs whose settings changed.
    """
    from mrgen_nnunet.benchmark.plans import is_planned, plans_name, shared_plans
    from mrgen_nnunet.trainers.nnunet_run import model_folder, nnunet_environment

    out = cfg.out
    env = nnunet_environment(out / "nnUNet_raw", out / "nnUNet_preprocessed", out / "nnUNet_results", n_proc_da=0)
    # nnU-Net's final validation spawns nnUNet_def_n_proc (default 8) worker processes; on a small CPU machine
    # starting them costs more than the work
    env["nnUNet_def_n_proc"] = "1"
    first, *selftrain_rounds = rounds(cfg.rows)  # self-training rounds follow the rows they take labels from
    every_row = first + [r for later in selftrain_rounds for r in later]
    progress = Progress(console, total_trainings=len(every_row) * len(cfg.seeds), jobs=jobs)
    ledger = Ledger(out / "ledger.json", cfg.first_dataset_id, out / "nnUNet_raw", force=force)
    build = Build(cfg, env, ledger, progress)
    timings: dict[str, float] = {}

    def timed(stage: str, fn, *args, **kwargs):
        t = time.perf_counter()
        value = fn(*args, **kwargs)
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - t
        return value

    needed = {p for r in every_row for p in ROWS[r].parts}
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

    plans = plans_name(cfg.spacing_mm)
    generated_rows = [r for r in first if set(ROWS[r].parts) & set(GENERATED)]
    datasets: dict[tuple[str, int], Path] = {}  # (row, seed) -> its training dataset
    independent: dict[tuple[str, int], Path] = {}  # the rows without a generated part
    parts_of = {seed: ({"source": source, "target": target}, {"source": "source", "target": "target"})
                for seed in cfg.seeds}
    threads = max(1, usable_cpus() // jobs) if jobs > 1 else None
    # `jobs` slots: a training holds one, and so does the generator's chain (train, synthesise, merge), so rows
    # that need no generator train side by side with it instead of waiting for it
    slots = threading.BoundedSemaphore(jobs)
    submitted: dict[tuple[str, int], Future] = {}
    ready = threading.Event()  # set once the source is planned and the parts without the generator are built
    stop = threading.Event()  # set when anything failed: tasks waiting for a slot give up instead of starting
    filter_key = ("source", cfg.seeds[0])  # the `nnunet` filter's model: the chain trains it (see generated_chain)

    def go_on() -> None:
        if stop.is_set():
            raise CancelledError("an earlier stage failed")

    plan_locks: dict[int, threading.Lock] = {}  # rows sharing a dataset preprocess it once

    def plan_copy(dataset: Path) -> None:
        """The shared plan copied to `dataset` and preprocessed (skipped when done before)."""
        other = dataset_id_of(dataset)
        with plan_locks.setdefault(other, threading.Lock()):
            if other != dataset_id_of(source) and not is_planned(dataset, plans, env):
                progress.log(f"copying the plan to {dataset.name} and preprocessing it")
                timed("plan", shared_plans, dataset_id_of(source), [other], env, cfg.spacing_mm, out / "logs")

    def trained_model(row: str, seed: int) -> Path:
        """The trained model folder of `row` for `seed` (a base or voter: its round trained before)."""
        return model_folder(seed_environment(env, seed)["nnUNet_results"], datasets[(row, seed)].name,
                            row_trainer(ROWS[row], cfg.trainer), plans)

    def train_row(row: str, seed: int, dataset: Path) -> RowResult:
        go_on()
        plan_copy(dataset)
        pretrained = None
        if ROWS[row].finetune:  # the base row's final weights
            pretrained = trained_model(ROWS[row].base, seed) / f"fold_{FOLD}" / "checkpoint_final.pth"
        result = train_and_test(cfg, row, seed, dataset, test, plans, env, out / "rows" / row / f"seed{seed}",
                                labels, ledger, build.settings[f"row:{row}:seed{seed}"], progress, threads,
                                pretrained=pretrained)
        build.settings[f"model:{row}:seed{seed}"] = ledger.entries[f"model:{row}:seed{seed}"]["settings"]
        return result

    def train_task(row: str, seed: int, dataset: Path) -> RowResult:
        with slots:
            try:
                return train_row(row, seed, dataset)
            except BaseException:
                stop.set()  # before the slot is released: no queued task starts after a failure
                raise

    def submit(items: dict[tuple[str, int], Path], rows: list[str]) -> list[Future]:
        # row-major order: a run stopped early has every seed of its first rows (what paired statistics need)
        order = sorted(items, key=lambda k: (rows.index(k[0]), cfg.seeds.index(k[1])))
        for key in order:
            submitted[key] = pool.submit(train_task, *key, items[key])
        return [submitted[key] for key in order]

    def generated_chain() -> list[Future]:
        """Generator -> (the `nnunet` filter's model) -> synthetic/translated parts -> their rows; then their
        trainings. Runs holding the slot the caller took for it: the generator is the longest stage and starts
        first, and the filter's model trains in the same slot (never queued behind other rows)."""
        items: dict[tuple[str, int], Path] = {}
        done: list[Future] = []
        try:
            index = _generator_index(out / "index" / "source.jsonl", out / "index" / "target.jsonl",
                                     out / "index" / "generator.jsonl")
            with torch_threads(threads):
                generator = timed("generator", build.generator, index, target_modality)
            ready.wait()  # the source's plan and the randomised parts the synthetic rows may merge
            go_on()
            if cfg.filter == "nnunet":
                done.append(Future())
                done[0].set_result(train_row(*filter_key, source))
            with torch_threads(threads):
                for seed in cfg.seeds:
                    parts, part_keys = parts_of[seed]
                    for part in GENERATED:
                        if part not in needed:
                            continue
                        go_on()
                        part_keys[part] = f"part:{part}:seed{seed}"
                        what = "labels" if part == "synthetic" else "slices"
                        progress.log(f"synthesising the target sequence from the source {what} (seed {seed}, mode "
                                     f"{'mask' if part == 'synthetic' else 'translate'}, filter: {cfg.filter})")
                        parts[part] = timed("synthesize", build.synthetic, seed, source, generator,
                                            target_modality, part)
                    for row in generated_rows:
                        items[(row, seed)] = timed("merge", build.row, row, seed, parts, part_keys)
        except BaseException:
            stop.set()
            raise
        finally:
            slots.release()
        datasets.update(items)
        return ([done[0]] if done and filter_key[0] in first else []) + submit(items, first)

    t = time.perf_counter()
    n_tasks = len(every_row) * len(cfg.seeds) + 1
    with ThreadPoolExecutor(max_workers=n_tasks) as pool:
        chain = None
        if generated_rows:
            slots.acquire()  # released by the chain
            chain = pool.submit(generated_chain)
        try:
            try:
                progress.log(f"planning once on {source.name} ({cfg.spacing_mm or 'native'} mm in-plane); every "
                             "row gets a copy of this plan")
                timed("plan", shared_plans, dataset_id_of(source), [], env, cfg.spacing_mm, out / "logs")
                for seed in cfg.seeds:  # what needs no generator: randomised parts and the rows made of them
                    parts, part_keys = parts_of[seed]
                    for part in SEED_PARTS:
                        if part in needed and part not in GENERATED:
                            part_keys[part] = f"part:{part}:seed{seed}"
                            parts[part] = timed("augment", build.randomised, part, seed, source)
                    for row in first:
                        if row not in generated_rows:
                            independent[(row, seed)] = timed("merge", build.row, row, seed, parts, part_keys)
                datasets.update(independent)
                if chain is not None and cfg.filter == "nnunet":
                    independent.pop(filter_key, None)  # the chain trains it before synthesising
            except BaseException:
                stop.set()
                raise
            finally:
                ready.set()  # also on failure (then with `stop` set): the chain must not wait forever
            futures = submit(independent, first)
            done = gather(futures + ([chain] if chain else []))
            results = done[:len(futures)] + (gather(done[-1]) if chain else [])
            for selftrain in selftrain_rounds:  # the base rows' models label the target training images
                this_round: dict[tuple[str, int], Path] = {}
                for seed in cfg.seeds:
                    parts, part_keys = parts_of[seed]
                    for row in selftrain:
                        base = ",".join(ROWS[row].labellers)  # one model, or an ensemble's
                        models = [trained_model(r, seed) for r in ROWS[row].labellers]
                        part_keys["pseudo"] = f"part:pseudo:{base}:seed{seed}"
                        parts["pseudo"] = timed("pseudo-label", build.pseudo, seed, base,
                                                models[0] if len(models) == 1 else models, target, test)
                        this_round[(row, seed)] = timed("merge", build.row, row, seed, parts, part_keys)
                datasets.update(this_round)
                results += gather(submit(this_round, selftrain))
        except BaseException:
            stop.set()  # trainings already running finish (or die with Ctrl-C); none starts after them
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    timings["train+test"] = time.perf_counter() - t
    order = {row: i for i, row in enumerate(cfg.rows)}
    results.sort(key=lambda r: (order.get(r.row, -1), cfg.seeds.index(r.seed)))
    notes = (f"Trainer schedule {cfg.trainer} (per-row family in the row table), fold {FOLD}, plan `{plans}` "
             f"(planned on the source dataset, copied to every row), device {cfg.device}, seeds {cfg.seeds}, "
             f"filter {cfg.filter}, synthesis profile {cfg.profile}, {jobs} job(s). Test set: {test.name} "
             f"({len(list_cases(test))} volumes). Stage wall times this run (s; with jobs > 1 the generator's "
             "stages overlap the trainings): "
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

