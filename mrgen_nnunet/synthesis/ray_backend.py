"""`synthesize --backend ray`: the same synthesis run, spread over a Ray Data actor pool (extra `[ray]`).

The local engine (`synthesis/run.py`, `scheduler.py`, `workfolder.py`) does all the work; Ray only schedules it:

1. The driver calls `synthesize` on an idle shard (one that owns no masks): it validates the options, builds the
   manifest and the work folder `.mrgen-partial-DatasetNNN_NAME/` exactly as a local run does, generates nothing.
   If every mask is already done (a resumed run) it assembles the dataset right there.
2. The driver takes the work folder's assembly lock, so no worker publishes the dataset behind its back.
3. `ray.data.from_items` makes one row per work unit u (units = shards u of U of the manifest, U = `workers` x
   `units_per_worker`); `map_batches` sends the rows to an `ActorPoolStrategy(size=workers)` pool of
   `SynthesisActor`s (one per device: `num_gpus=1` on CUDA). An actor loads the generator and the filter once, then
   runs `synthesize(shard=u, num_shards=U)` per row: the local per-mask atomic writes and item files, so accepted
   slices stream to disk as masks finish, and masks done by an earlier (killed) run are skipped.
4. The driver releases the lock and calls `synthesize` on the idle shard again, which assembles dataset.json,
   provenance and the contact sheet and publishes the folder — the local assembly, unchanged.

Seeds are per (mask, try) and batches are formed from fixed manifest chunks, so the accepted set equals a local
run's with the same options, whatever the number of workers. Resume: run the same command again.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from mrgen_nnunet.data.nnunet_raw import dataset_folder_name
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.progress import StepProgress
from mrgen_nnunet.synthesis.options import SynthesisOptions, SynthesisSummary, target_names
from mrgen_nnunet.synthesis.run import synthesize
from mrgen_nnunet.synthesis.workfolder import assembly_lock, work_folder

IDLE_SHARDS = 2**31  # num_shards of the driver's calls; its shard IDLE_SHARDS - 1 owns no manifest chunk


def build_components(options: SynthesisOptions):
    """(generator pipeline, filter backend) from the options' folders, on `options.device`, with the profile's
    speed settings applied (what `synthesize` does when it gets none)."""
    from mrgen_nnunet.filtering.backends import build_filter, filter_settings
    from mrgen_nnunet.generator.protocol import load_generator
    from mrgen_nnunet.synthesis.profiles import prepare_pipeline, resolve_profile

    o = resolve_profile(options)
    pipe = load_generator(o.generator, o.controlnet, o.device)
    prepare_pipeline(pipe, o.device, o.mixed_precision, o.compile)
    filt = build_filter(o.filter, filter_settings(o))
    return pipe, filt


class SynthesisActor:
    """A Ray Data actor: holds one generator + filter, runs `synthesize` on the shards named by each batch.

    `build(options) -> (pipeline, filter)` runs once, in the actor's process (default: `build_components`).
    Batch in: {"unit": int array}; out: {"unit", "accepted_so_far", "candidates_so_far"} (over the whole run).
    """

    def __init__(self, options: SynthesisOptions, num_units: int, build=None, threads: int = 1):
        import torch

        # the actor's CPU share, whatever OMP_NUM_THREADS the worker inherited: images are bit-identical only at
        # the same thread count
        torch.set_num_threads(threads)
        self.options, self.num_units = options, num_units
        self.pipe, self.filt = (build or build_components)(options)

    def __call__(self, batch: dict) -> dict:
        import numpy as np

        units, accepted, candidates = [], [], []
        for u in batch["unit"].tolist():
            o = replace(self.options, shard=int(u), num_shards=self.num_units, progress=False)
            summary = synthesize(o, pipeline=self.pipe, filter_backend=self.filt)
            units.append(u)
            accepted.append(summary.accepted)
            candidates.append(summary.candidates)
        return {"unit": np.array(units), "accepted_so_far": np.array(accepted),
                "candidates_so_far": np.array(candidates)}


def synthesize_ray(options: SynthesisOptions, workers: int = 1, units_per_worker: int = 8,
                   cpus_per_worker: float = 1.0, address: str | None = None, build=None) -> SynthesisSummary:
    """Run (or resume) `options` on a Ray Data actor pool of `workers` actors; returns the final summary.

    `address`: an existing Ray cluster ("auto", "ray://host:10001"); None starts a local instance (or uses the
    one already initialised in this process). Each actor reserves `cpus_per_worker` CPUs, and one GPU when
    `options.device` is CUDA. `build` as in `SynthesisActor` (it must be picklable; the driver also calls it with
    device "cpu" to validate and assemble).
    """
    try:
        import ray
    except ImportError:
        raise MRGenError("--backend ray needs Ray Data", "--backend",
                         "pip install 'mrgen-nnunet[ray]' (or 'ray[data]'), or use --backend local") from None
    if options.num_shards != 1:
        raise MRGenError("--backend ray shards the manifest itself", "--shard",
                         "drop --shard (and RANK/WORLD_SIZE), or use --backend local with accelerate launch")
    if workers < 1 or units_per_worker < 1:
        raise MRGenError("need --workers >= 1", "--workers", "pass the number of Ray actors (devices)")
    idle = replace(options, shard=IDLE_SHARDS - 1, num_shards=IDLE_SHARDS)
    driver_pipe, driver_filt = (build or build_components)(replace(options, device="cpu"))
    summary = synthesize(idle, pipeline=driver_pipe, filter_backend=driver_filt)  # validate + prepare, no masks
    if summary.complete:
        return summary
    work = _work_folder(options)
    with assembly_lock(work) as held:
        if not held:
            raise MRGenError("another process is assembling this dataset", work, "wait for it to finish")
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        num_units = min(summary.masks, workers * units_per_worker)
        gpu = options.device.startswith("cuda")
        rows = ray.data.from_items([{"unit": u} for u in range(num_units)], override_num_blocks=num_units)
        results = rows.map_batches(
            SynthesisActor, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs={"options": options, "num_units": num_units, "build": build,
                                   "threads": max(1, int(cpus_per_worker))},
            num_cpus=cpus_per_worker, num_gpus=1 if gpu else 0)
        with StepProgress("synthesize (ray)", num_units, quiet=not options.progress, unit="unit") as bar:
            for done, row in enumerate(results.iter_rows(), 1):  # streams: each row is one finished unit
                bar.update(done, note=f"accepted {int(row['accepted_so_far'])}/{int(row['candidates_so_far'])} "
                                      "candidates")
    return synthesize(idle, pipeline=driver_pipe, filter_backend=driver_filt)  # every mask done: assemble


def _work_folder(options: SynthesisOptions) -> Path:
    """The hidden work folder the local engine made for this dataset."""
    name, _ = target_names(options.target, options.name)
    work = work_folder(Path(options.out_raw) / dataset_folder_name(options.out_dataset, name, "--out-dataset"))
    if not work.is_dir():
        raise MRGenError("the unfinished synthesis folder is missing", work, "rerun the command")
    return work
