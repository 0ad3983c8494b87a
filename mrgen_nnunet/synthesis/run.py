"""masks -> target-sequence slices -> filter -> a new nnU-Net slice dataset; resumable and shardable.

`synthesize` is the entry point; the engine is in three modules:

    options.py      SynthesisOptions (settings left None come from the profile, profiles.py), SynthesisSummary
    scheduler.py    chunks of masks -> generator calls -> filter scores
    workfolder.py   the hidden work folder `raw_root/.mrgen-partial-DatasetNNN_NAME/`: resume, per-item writes,
                    assembly and publishing

A source mask is done when its item file exists. Masks are batched in fixed chunks of `masks_per_batch`
consecutive manifest items (the unit of batching, sharding and resume): a re-run skips chunks whose masks are all
done and redoes the others from scratch with the same seeds and batches, so the result is identical to an
uninterrupted run (at the same torch thread count). When every mask of the manifest is done (all shards), the
dataset is assembled and the folder is renamed to `DatasetNNN_NAME` (an existing dataset is replaced only with
`force`).
"""

from __future__ import annotations

import time
from pathlib import Path

from mrgen_nnunet.data.nnunet_raw import dataset_folder_name, refuse_existing
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.generator.protocol import check_pipeline, load_generator
from mrgen_nnunet.progress import StepProgress
from mrgen_nnunet.synthesis import workfolder
from mrgen_nnunet.synthesis.manifest import MaskItem, build_manifest, load_sources
from mrgen_nnunet.synthesis.options import SynthesisOptions, SynthesisSummary, target_names
from mrgen_nnunet.synthesis.scheduler import finished_chunks, shard_chunks

__all__ = ["SynthesisOptions", "SynthesisSummary", "load_generator", "synthesize"]


def synthesize(options: SynthesisOptions, pipeline=None, filter_backend=None) -> SynthesisSummary:
    """Run (or resume) the synthesis described by `options`; returns the summary.

    `pipeline` / `filter_backend` are built from the options when None (tests pass tiny ones); settings left at
    None come from `options.profile` (see synthesis/profiles.py).
    """
    from mrgen_nnunet.data.prompts import load_modality_table, resolve_modality
    from mrgen_nnunet.synthesis.profiles import filter_for_profile, prepare_pipeline, resolve_profile

    o = resolve_profile(options)
    name, channel = target_names(o.target, o.name)
    out_raw = Path(o.out_raw)
    if out_raw.exists() and not out_raw.is_dir():
        raise MRGenError("--out-raw is a file, not a folder", out_raw, "pass the nnU-Net raw folder (nnUNet_raw)")
    final = out_raw / dataset_folder_name(o.out_dataset, name, "--out-dataset")
    refuse_existing(out_raw, o.out_dataset, o.force, "--out-dataset")

    source = load_sources(o.source, o.raw_root or o.out_raw)
    if pipeline is None:  # load_generator checks what its family's loader returns
        pipe = load_generator(o.generator, o.controlnet, o.device)
        prepare_pipeline(pipe, o.device, o.mixed_precision, o.compile)
    else:
        pipe = check_pipeline(pipeline, o.generator)
    config = pipe.config
    gen_labels = {k: int(v) for k, v in config.labels.items()}
    if gen_labels != source.labels:
        raise MRGenError(f"generator labels {gen_labels} and source labels {source.labels} disagree", o.generator,
                         "use a generator trained on this label map (mrgen_generator.json 'labels')")
    table = load_modality_table()  # built-in keys and aliases, with the generator's own entries over them
    for key, entry in config.modalities.items():
        table[key] = {"region": "", **table.get(key, {"aliases": []}), **entry}
    modality = resolve_modality(o.target, table)
    if filter_backend is None:
        from mrgen_nnunet.filtering.backends import build_filter, filter_settings

        filter_backend = build_filter(o.filter, filter_settings(o))
    o.filter_id = filter_backend.id
    filter_backend = filter_for_profile(filter_backend, o.sam2_encode)
    filter_backend.check_labels(source.labels)

    items = build_manifest(source, o.max_tries, o.seed)
    work = workfolder.work_folder(final)
    workfolder.prepare(work, o.fingerprint(), o.force)
    generator_id = Path(o.generator).name
    todo = [c for c in shard_chunks(items, o.masks_per_batch, o.shard, o.num_shards)
            if not workfolder.all_done(work, c)]
    _run_chunks(todo, pipe, filter_backend, source.labels, modality, o, work, generator_id)
    if not workfolder.all_done(work, items):  # other shards still have work
        return workfolder.summarize(items, work, o.filter_id, generator_id, o.settings(), None, complete=False)
    with workfolder.assembly_lock(work) as held:
        if not held:  # another shard is assembling
            return workfolder.summarize(items, work, o.filter_id, generator_id, o.settings(), None, complete=False)
        summary = workfolder.summarize(items, work, o.filter_id, generator_id, o.settings(), str(final),
                                       complete=True)
        workfolder.assemble(items, work, final, o.out_dataset, o.force, source.labels, modality.key, channel, summary)
    return summary


def _run_chunks(chunks: list[list[MaskItem]], pipe, filt, labels: dict[str, int], modality, o: SynthesisOptions,
                work: Path, generator_id: str) -> None:
    """Generate, filter, select and write every mask of `chunks`; progress per finished chunk (a bar on a
    terminal, a plain line every 30 s otherwise: masks done, accepted of candidates, masks/s, ETA)."""
    done = accepted = candidates = 0
    mark = time.perf_counter()
    with StepProgress("synthesize", sum(len(c) for c in chunks), quiet=not o.progress, unit="mask") as bar:
        for masks in finished_chunks(chunks, pipe, filt, labels, modality, pipe.config.resolution, o):
            records = workfolder.write_chunk(masks, work, generator_id, mark, o.thresholds, o.samples_per_mask,
                                             o.relax, o.relax_keep)
            mark = time.perf_counter()
            done += len(records)
            accepted += sum(len(r["accepted"]) for r in records)
            candidates += sum(len(r["candidates"]) for r in records)
            share = f"{accepted / candidates:.0%}" if candidates else "-"
            bar.update(done, note=f"accepted {accepted}/{candidates} ({share})")
