"""One benchmark training: train a row's dataset with the shared plan, predict the test volumes, evaluate; and
the progress lines and thread shares of side-by-side jobs. Used by protocol.run_benchmark."""

from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from contextlib import contextmanager
from pathlib import Path

from mrgen_nnunet.benchmark.build import seed_environment
from mrgen_nnunet.benchmark.config import BenchmarkConfig
from mrgen_nnunet.benchmark.ledger import Ledger
from mrgen_nnunet.benchmark.report import RowResult
from mrgen_nnunet.benchmark.rows import ROWS, row_trainer
from mrgen_nnunet.data.io import write_text_atomic
from mrgen_nnunet.data.nnunet_raw import list_cases
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


def _number(x: float | None) -> float:
    """HD95 is undefined (None/NaN) when a structure is absent from prediction or reference."""
    return float("nan") if x is None else float(x)


def result_from_metrics(row: str, seed: int, metrics: dict, **fields) -> RowResult:
    """A RowResult from `evaluation.metrics.evaluate_folder`'s summary (foreground structures; None -> NaN)."""
    structures = list(metrics["mean"])
    return RowResult(row, seed, {s: float(metrics["mean"][s]["Dice"]) for s in structures},
                     {s: _number(metrics["mean"][s]["HD95_mm"]) for s in structures},
                     cases={c: {s: _number(v[s]["Dice"]) for s in structures} for c, v in metrics["cases"].items()},
                     **fields)


def dataset_id_of(folder: Path) -> int:
    return int(folder.name[len("Dataset"):].split("_")[0])


@contextmanager
def torch_threads(threads: int | None):
    """torch's intra-op threads set to `threads` (one job's share) for in-process work such as the generator's
    training while trainings run beside it; None: unchanged."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def gather(futures: list[Future]) -> list:
    """The futures' results in order; the first failure is raised as soon as it happens (not after the others)."""
    wait(futures, return_when=FIRST_EXCEPTION)
    for f in futures:
        if f.done() and f.exception() is not None:
            raise f.exception()
    return [f.result() for f in futures]


_display = threading.Lock()  # prediction and evaluation draw rich progress bars: one at a time


def train_and_test(cfg: BenchmarkConfig, row: str, seed: int, dataset: Path, test: Path, plans: str, env: dict,
                   out: Path, labels: dict[str, int], ledger: Ledger, settings: dict, progress: Progress,
                   threads: int | None = None, pretrained: Path | None = None) -> RowResult:
    """Train `dataset` with the shared plan and the row's trainer, predict the test volumes, evaluate.

    The result (out/result.json) is reused when its settings match; a training killed midway continues from its
    latest checkpoint (`nnUNetv2_train --c`). `threads` sets OMP_NUM_THREADS of the training (side-by-side jobs).
    `pretrained`: a checkpoint to start from (`nnUNetv2_train -pretrained_weights`: fine-tuning).
    """
    from mrgen_nnunet.evaluation.metrics import evaluate_folder
    from mrgen_nnunet.trainers.nnunet_run import model_folder, predict, train

    trainer = row_trainer(ROWS[row], cfg.trainer)
    done = out / "result.json"
    env = seed_environment(env, seed)
    model = model_folder(env["nnUNet_results"], dataset.name, trainer, plans) / f"fold_{FOLD}"
    key_settings = {"dataset": settings, "trainer": trainer, "plans": plans, "fold": FOLD, "seed": seed,
                    "test": cfg.test.patients, "device": cfg.device, **({"init": "pretrained"} if pretrained else {})}

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
        if pretrained is not None and not resume and not Path(pretrained).is_file():
            raise MRGenError(f"row '{row}' starts from a model that has not finished training", pretrained,
                             "train its base row first (the benchmark does, in the round before)")
        start = ("--c",) if resume else ("-pretrained_weights", str(pretrained)) if pretrained is not None else ()
        train(dataset_id_of(dataset), trainer, FOLD, env, configuration="2d", device=cfg.device, plans=plans,
              extra_args=start, progress=progress.jobs == 1)
    t1 = time.perf_counter()
    with _display:
        pred = out / "predictions"
        predict(dataset_id_of(dataset), test / "imagesTr", pred, trainer, env, fold=FOLD, configuration="2d",
                device=cfg.device, plans=plans)
        t2 = time.perf_counter()
        metrics = evaluate_folder(pred, test / "labelsTr", labels, out / "evaluation")
    result = result_from_metrics(row, seed, metrics, train_cases=len(list_cases(dataset)), trainer=trainer,
                                 seconds={"train": t1 - t0, "predict": t2 - t1, "evaluate": time.perf_counter() - t2})
    write_text_atomic(json.dumps(result.to_dict(), indent=1) + "\n", done)
    progress.training_finished(t1 - t0, f"row '{row}' seed {seed} (mean Dice {result.mean_dice:.3f})")
    return result


