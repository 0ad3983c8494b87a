"""masks -> target-sequence slices -> filter -> a new nnU-Net slice dataset; resumable and shardable.

Work happens in a hidden folder `raw_root/.mrgen-partial-DatasetNNN_NAME/` (invisible to nnU-Net):

    run.json                the options that determine the output (a resumed run must match them)
    imagesTr/ labelsTr/     accepted cases, written atomically
    items/<case>.json       one per finished source mask: its candidates, scores, accepted cases (the commit point)
    rows/<case>.png            contact-sheet rows

A source mask is done when its item file exists. Masks are batched in fixed chunks of `masks_per_batch`
consecutive manifest items (the unit of batching, sharding and resume): a re-run skips chunks whose masks are all
done and redoes the others from scratch with the same seeds and batches, so the result is identical to an
uninterrupted run (at the same torch thread count). Settings left None come from the profile (profiles.py). When every mask of the
manifest is done (all shards), dataset.json, provenance.jsonl, summary.json and contact_sheet.png are written and
the folder is renamed to `DatasetNNN_NAME` (an existing dataset is replaced only with `force`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from mrgen_nnunet.data.io import write_image, write_text_atomic
from mrgen_nnunet.data.nnunet_raw import process_alive
from mrgen_nnunet.data.normalize import denormalize_slice, normalize_label, normalize_slice
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.filtering.selection import Thresholds, passes, select, should_skip
from mrgen_nnunet.synthesis.contact_sheet import (
    Candidate,
    caption,
    png_bytes,
    render_row,
    stack_rows,
    write_bytes_atomic,
)
from mrgen_nnunet.synthesis.manifest import MaskItem, build_manifest, load_sources

SHEET_ROWS, SHEET_CANDIDATES = 8, 6  # contact sheet: masks (spread over the manifest), candidates per mask


@dataclass
class SynthesisOptions:
    """Everything `synthesize` needs; paths are explicit (the CLI resolves nnUNet_raw and RANK/WORLD_SIZE)."""

    target: str  # target modality name or alias, e.g. "LGE", "T2-SPIR"
    source: str  # index .jsonl, dataset folder, or dataset id/name in raw_root
    generator: str  # generator folder (ours or MRGen's released layout)
    out_raw: str  # nnU-Net raw folder to write the dataset into
    out_dataset: int  # dataset id
    name: str | None = None  # dataset name; default "MRGen_<target>"
    controlnet: str | None = None
    raw_root: str | None = None  # where a dataset id/name --source is looked up (default: out_raw)
    profile: str = "fast"  # "reference" (MRGen's settings) | "fast"; fills every setting below left at None
    mode: str = "mask"  # "mask" (MRGen: an image from the mask alone) | "translate" (from the source image too)
    strength: float = 0.6  # translate: share of the schedule run from the source image (0 = unchanged, 1 = noise)
    translate: str = "sdedit"  # translate: "sdedit" (noise the source latent) | "inversion" (DDIB, DDIM-invert)
    source_prompt: str = ""  # translate inversion: the source side's prompt ("" = the unconditional prompt)
    samples_per_mask: int = 2
    max_tries: int | None = None  # candidates per mask at most (profiles: 20)
    batch_size: int | None = None  # candidates per generator call
    masks_per_batch: int | None = None  # masks whose candidates may share one generator call
    early_stop: bool | None = None  # stop a mask once samples_per_mask candidates passed
    steps: int | None = None
    scheduler: str | None = None  # "ddim" | "dpm"
    guidance: float | None = None
    sam2_encode: str | None = None  # "organ" (MRGen, set_image per organ) | "image" (once per image, batched)
    overlap: bool | None = None  # filter in a background thread while the next batch is generated
    mixed_precision: bool | None = None  # bf16 autocast + channels_last on CUDA only
    compile: bool | None = None  # torch.compile UNet and ControlNet
    seed: int = 0
    filter: str = "sam2"  # "sam2" | "nnunet" | "none"
    sam2_config: str = "tiny"
    sam2_checkpoint: str | None = None
    sam2_prompt: str = "mask"  # "mask" (MRGen) | "box" | "box+mask"
    filter_model: str | None = None  # trained nnU-Net model folder for --filter nnunet
    trust_checkpoint: bool = False  # load the filter model's checkpoint with the full pickle (trusted source only)
    filter_id: str = ""  # set from the backend
    thresholds: Thresholds = field(default_factory=Thresholds)
    relax: float = 0.1
    relax_keep: int = 1
    shard: int = 0
    num_shards: int = 1
    force: bool = False
    device: str = "cpu"
    progress: bool = True

    def fingerprint(self) -> dict:
        """The options that determine the output (not sharding, progress, device, force, overlap, trust)."""
        d = asdict(self)
        for k in ("shard", "num_shards", "force", "progress", "device", "overlap", "trust_checkpoint"):
            d.pop(k)
        return d


@dataclass
class SynthesisSummary:
    """Counts of a run. `complete` is False when other shards still have work (no dataset published yet)."""

    masks: int
    masks_skipped: int
    masks_with_accepted: int
    candidates: int
    accepted: int
    relaxed: int
    acceptance_rate: float  # accepted / candidates
    seconds: float  # generation + filtering time summed over items
    slices_per_second: float  # candidates / seconds
    filter: str
    generator: str
    dataset: str | None  # the published folder, or None while incomplete
    complete: bool
    note: str = ""
    settings: dict = field(default_factory=dict)  # the resolved options that determine the output (profile filled in)

    def to_dict(self) -> dict:
        return asdict(self)


def _cfg(pipe, key: str, default=None):
    config = pipe.config
    return config.get(key, default) if isinstance(config, dict) else getattr(config, key, default)


def load_generator(path: str, controlnet: str | None, device: str):
    """The generator pipeline of contract §3 (`MRGenPipeline.from_pretrained`)."""
    from mrgen_nnunet.generator.pipeline import MRGenPipeline

    if not Path(path).is_dir():
        raise MRGenError("generator folder not found", path, "train one with `mrgen-nnunet train` or pass its folder")
    return MRGenPipeline.from_pretrained(path, controlnet=controlnet, device=device)


def synthesize(options: SynthesisOptions, pipeline=None, filter_backend=None) -> SynthesisSummary:
    """Run (or resume) the synthesis described by `options`; returns the summary.

    `pipeline` / `filter_backend` are built from the options when None (tests pass tiny ones); settings left at
    None come from `options.profile` (see synthesis/profiles.py).
    """
    from mrgen_nnunet.data.nnunet_raw import dataset_folder_name
    from mrgen_nnunet.data.prompts import load_modality_table, resolve_modality
    from mrgen_nnunet.synthesis.profiles import filter_for_profile, prepare_pipeline, resolve_profile

    o = resolve_profile(options)
    name = o.name or f"MRGen_{''.join(c if c.isalnum() else '_' for c in o.target)}"
    out_raw = Path(o.out_raw)
    if out_raw.exists() and not out_raw.is_dir():
        raise MRGenError("--out-raw is a file, not a folder", out_raw, "pass the nnU-Net raw folder (nnUNet_raw)")
    final = out_raw / dataset_folder_name(o.out_dataset, name, "--out-dataset")
    existing = sorted(p for p in out_raw.glob(f"Dataset{o.out_dataset:03d}_*") if p.is_dir()) if out_raw.is_dir() else []
    if existing and not o.force:
        raise MRGenError(f"dataset id {o.out_dataset} is already used by {existing[0].name}", out_raw,
                         "choose another --out-dataset or pass --force to replace it")

    source = load_sources(o.source, o.raw_root or o.out_raw)
    pipe = pipeline
    if pipe is None:
        pipe = load_generator(o.generator, o.controlnet, o.device)
        prepare_pipeline(pipe, o.device, o.mixed_precision, o.compile)
    gen_labels = {k: int(v) for k, v in (_cfg(pipe, "labels") or {}).items()}
    if gen_labels != source.labels:
        raise MRGenError(f"generator labels {gen_labels} and source labels {source.labels} disagree", o.generator,
                         "use a generator trained on this label map (mrgen_generator.json 'labels')")
    table = load_modality_table()  # built-in keys and aliases, with the generator's own entries over them
    for key, entry in (_cfg(pipe, "modalities") or {}).items():
        table[key] = {"region": "", **table.get(key, {"aliases": []}), **entry}
    modality = resolve_modality(o.target, table)
    if filter_backend is None:
        from mrgen_nnunet.filtering.backends import build_filter, filter_settings

        filter_backend = build_filter(o.filter, filter_settings(o))
    o.filter_id = filter_backend.id
    filter_backend = filter_for_profile(filter_backend, o.sam2_encode)
    filter_backend.check_labels(source.labels)

    items = build_manifest(source, o.max_tries, o.seed)
    work = out_raw / f".mrgen-partial-{final.name}"
    _prepare_work(work, o)
    generator_id = str(_cfg(pipe, "id", None) or Path(o.generator).name)
    _process(_my_chunks(items, o, work), pipe, filter_backend, source.labels, modality, o, work, generator_id)
    if not all((work / "items" / f"{it.source.case}.json").is_file() for it in items):
        return _summary(items, work, o, generator_id, None, complete=False)
    return _assemble(items, work, final, out_raw, o, source.labels, modality.key, generator_id)


def _prepare_work(work: Path, o: SynthesisOptions) -> None:
    fingerprint = json.dumps(o.fingerprint(), sort_keys=True, indent=1, default=str)
    run_json = work / "run.json"
    if run_json.is_file() and run_json.read_text(encoding="utf-8") != fingerprint:
        if not o.force and any((work / "items").glob("*.json")):  # no finished mask: nothing to lose
            raise MRGenError("an unfinished synthesis with other options exists", work,
                             "rerun with the same options to resume, or pass --force to start over")
        shutil.rmtree(work)
    for sub in ("imagesTr", "labelsTr", "items", "rows"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    if not run_json.is_file():
        write_text_atomic(fingerprint, run_json)


@dataclass
class _Mask:
    """One source mask in flight: its prepared inputs, and candidates (images, scores) in try order."""

    item: MaskItem
    record: dict
    x: np.ndarray | None = None  # (N, N) normalised source image in [-1, 1]
    label_n: np.ndarray | None = None  # (N, N) uint8 label map at the model resolution
    label: np.ndarray | None = None  # (H, W) uint8 source label map
    info: object = None  # SliceNormalisation
    geometry: object = None
    pixel_spacing: float = 0.0
    tries: int = 0  # candidates this mask may get at most
    asked: int = 0  # tries scheduled so far
    images: list = field(default_factory=list)
    scores: list = field(default_factory=list)


def _chunks(items: list[MaskItem], o: SynthesisOptions) -> list[list[MaskItem]]:
    """Consecutive groups of `masks_per_batch` items: the unit of batching, sharding (round robin) and resume."""
    m = o.masks_per_batch
    return [items[i: i + m] for i in range(0, len(items), m)]


def _my_chunks(items: list[MaskItem], o: SynthesisOptions, work: Path) -> list[list[MaskItem]]:
    """This shard's chunks that are not done (a chunk is redone whole unless every one of its items is done)."""
    if not 0 <= o.shard < o.num_shards:
        raise MRGenError(f"shard {o.shard}/{o.num_shards} is out of range", "--shard", "use i/n with 0 <= i < n")
    return [c for k, c in enumerate(_chunks(items, o)) if k % o.num_shards == o.shard
            and not all((work / "items" / f"{it.source.case}.json").is_file() for it in c)]


def _process(chunks: list[list[MaskItem]], pipe, filt, labels: dict[str, int], modality, o: SynthesisOptions,
             work: Path, generator_id: str) -> None:
    """Generate, filter and select for every mask of `chunks`; each finished chunk writes its item files.

    Within a chunk, generator calls take up to `batch_size` candidates from the chunk's masks in order (each mask
    as many as it still wants); with `overlap`, two chunks alternate so that one chunk's batch is filtered in a
    background thread while the other chunk's next batch is generated. A chunk's batches do not depend on the
    other chunk, so the output is the same with or without overlap.
    """
    from concurrent.futures import ThreadPoolExecutor

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    size = int(_cfg(pipe, "resolution"))
    columns = (TextColumn("synthesize"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
               TextColumn("accepted {task.fields[acc]}/{task.fields[cand]} ({task.fields[rate]})"))
    totals = {"acc": 0, "cand": 0, "mark": time.perf_counter()}
    queue = list(reversed(chunks))
    running: list[tuple[list[_Mask], object]] = []  # (masks of a chunk, pending filter future or None)
    with Progress(*columns, disable=not o.progress) as bar, ThreadPoolExecutor(1) as pool:
        task = bar.add_task("masks", total=sum(len(c) for c in chunks), acc=0, cand=0, rate="-")
        while queue or running:
            while queue and len(running) < (2 if o.overlap else 1):
                running.append(([_prepare(it, labels, modality, o, size, filt) for it in queue.pop()], None))
            masks, pending = running.pop(0)
            if pending is not None:
                _collect(*pending.result())
            batch = _next_batch(masks, o, filt.checks)
            if not batch:
                _finish_chunk(masks, o, work, generator_id, totals, bar, task)
                continue
            images, maps = _generate(pipe, batch, o)
            job = (batch, images, maps, labels, filt)
            future = pool.submit(_score, *job)
            if not o.overlap or all(m.asked == m.tries for m in masks):  # nothing left to overlap with
                _collect(*future.result())
                future = None
            if all(m.asked == m.tries for m in masks):  # no mask can want more: finish now, not a turn later
                _finish_chunk(masks, o, work, generator_id, totals, bar, task)
                continue
            running.append((masks, future))


def _prepare(item: MaskItem, labels: dict[str, int], modality, o: SynthesisOptions, size: int, filt) -> _Mask:
    """Load and normalise the source slice, build its prompt; a mask below min_foreground gets `skipped`."""
    from mrgen_nnunet.data.prompts import build_prompt

    s = item.source
    image, label, geometry = s.load()
    names = {v: k for k, v in labels.items()}
    organs = [names[v] for v in sorted(np.unique(label).tolist()) if v != 0 and v in names]
    prompt = build_prompt(modality.key, modality.attributes, modality.region, organs)
    record = {"source_case": s.case, "patient": s.patient, "source_image": Path(s.image_file).name,
              "source_slice": s.slice_index, "prompt": prompt, "generator": None, "filter": filt.id, "skipped": None,
              "relaxed": False, "candidates": [], "accepted": []}
    if should_skip(label, o.thresholds):
        record["skipped"] = f"foreground <= {o.thresholds.min_foreground:.2%}"
        return _Mask(item, record)
    x, info = normalize_slice(image, size)
    pixel_spacing = float(max(info.shape[0] + info.pad[0] + info.pad[1], 1)) * float(geometry.spacing[0]) / size
    tries = o.max_tries if filt.checks else o.samples_per_mask
    return _Mask(item, record, x, normalize_label(label, info), label, info, geometry, pixel_spacing, tries)


def _want(m: _Mask, o: SynthesisOptions, checks: bool) -> int:
    """How many more candidates mask `m` wants now (all outstanding scores of its chunk are in)."""
    left = m.tries - m.asked
    if o.early_stop and checks:
        return min(left, max(0, o.samples_per_mask - sum(passes(sc, o.thresholds) for sc in m.scores)))
    return left


def _next_batch(masks: list[_Mask], o: SynthesisOptions, checks: bool) -> list[tuple[_Mask, int]]:
    """Up to `batch_size` (mask, try) pairs, masks in chunk order, each taking as many tries as it wants."""
    batch = []
    for m in masks:
        n = min(_want(m, o, checks), o.batch_size - len(batch))
        batch.extend((m, t) for t in range(m.asked, m.asked + n))
        m.asked += n
    return batch


def _generate(pipe, batch: list[tuple[_Mask, int]], o: SynthesisOptions) -> tuple[np.ndarray, np.ndarray]:
    """One generator call for the batch -> (images (B, N, N) float32 in [-1, 1], label maps (B, N, N) uint8)."""
    from mrgen_nnunet.synthesis.profiles import autocast

    maps = np.stack([m.label_n for m, _ in batch])
    with torch.no_grad(), autocast(o.device, o.mixed_precision):
        translate = {}
        if o.mode == "translate":  # start from the source slices themselves (their labels are the masks)
            translate = {"image": torch.from_numpy(np.stack([m.x for m, _ in batch]))[:, None].float(),
                         "strength": o.strength, "translate": o.translate, "source_prompt": o.source_prompt}
        out = pipe(prompt=[m.record["prompt"] for m, _ in batch], mask=pipe.encode_masks(maps),
                   num_inference_steps=o.steps, guidance_scale=o.guidance,
                   generator=[torch.Generator("cpu").manual_seed(m.item.seeds[t]) for m, t in batch],
                   scheduler=o.scheduler, **translate)
    return out.images[:, 0].detach().float().cpu().numpy(), maps


def _score(batch, images, maps, labels, filt):
    """Filter one generated batch (runs in the background thread with `overlap`)."""
    return batch, images, filt.score(images, maps, labels, [m.pixel_spacing for m, _ in batch])


def _collect(batch, images, scores) -> None:
    for (m, _), image, sc in zip(batch, images, scores, strict=True):
        m.images.append(image)
        m.scores.append(sc)


def _finish_chunk(masks: list[_Mask], o: SynthesisOptions, work: Path, generator_id: str, totals: dict, bar,
                  task) -> None:
    """Select, write accepted cases and contact-sheet rows, then the item files (the commit point) of a chunk.
    Each item's `seconds` is its share of the wall time since the previous chunk finished."""
    records = [_select_and_write(m, o, work, generator_id) for m in masks]
    now = time.perf_counter()
    for r in records:
        r["seconds"] = (now - totals["mark"]) / len(records)
        write_text_atomic(json.dumps(r, sort_keys=True, indent=1), work / "items" / f"{r['source_case']}.json")
        totals["acc"] += len(r["accepted"])
        totals["cand"] += len(r["candidates"])
    totals["mark"] = now
    rate = f"{totals['acc'] / totals['cand']:.0%}" if totals["cand"] else "-"
    bar.update(task, advance=len(records), acc=totals["acc"], cand=totals["cand"], rate=rate)


def _select_and_write(m: _Mask, o: SynthesisOptions, work: Path, generator_id: str) -> dict:
    record, s, images, scores = m.record, m.item.source, m.images, m.scores
    record["generator"] = generator_id
    if record["skipped"] is not None:
        return record
    if record["filter"] == "none":
        kept, relaxed = list(range(len(images)))[: o.samples_per_mask], False
    else:
        sel = select(scores, o.thresholds, o.samples_per_mask, o.relax, o.relax_keep)
        kept, relaxed = sel.kept, sel.relaxed
    for t, sc in enumerate(scores):
        record["candidates"].append({"try": t, "seed": m.item.seeds[t], **sc.to_dict(),
                                     "passed": passes(sc, o.thresholds), "accepted": t in kept})
    for j, t in enumerate(kept):
        case = f"syn_{s.case}_k{j}"
        write_image(denormalize_slice(images[t], m.info), m.geometry, work / "imagesTr" / f"{case}_0000.nii.gz")
        write_image(m.label, m.geometry, work / "labelsTr" / f"{case}.nii.gz")
        record["accepted"].append({"case": case, "try": t, "seed": m.item.seeds[t], "relaxed": relaxed})
    record["relaxed"] = relaxed and bool(kept)

    shown = (kept + [t for t in range(len(images)) if t not in kept])[:SHEET_CANDIDATES]  # accepted first
    filtered = record["filter"] != "none"
    tiles = [Candidate(images[t], scores[t].prediction, t in kept, caption(t, scores[t], t in kept, filtered))
             for t in shown]
    verdict = ("accepted" + (" (thresholds relaxed)" if record["relaxed"] else "")) if filtered else "kept (no filter)"
    title = f"{s.case}: {len(kept)} of {len(images)} candidates {verdict}"
    write_bytes_atomic(png_bytes(render_row(m.x, m.label_n, tiles, title)), work / "rows" / f"{s.case}.png")
    return record


def _records(items: list[MaskItem], work: Path) -> list[dict]:
    return [json.loads((work / "items" / f"{it.source.case}.json").read_text(encoding="utf-8")) for it in items]


def _summary(items, work, o, generator_id, dataset, complete) -> SynthesisSummary:
    done = [r for r in _records([it for it in items if (work / "items" / f"{it.source.case}.json").is_file()], work)]
    cands = sum(len(r["candidates"]) for r in done)
    acc = sum(len(r["accepted"]) for r in done)
    seconds = sum(r["seconds"] for r in done)
    note = "filter 'none': no quality check, the first samples of each mask were kept" if o.filter_id == "none" else ""
    if not complete:
        note = f"{len(done)}/{len(items)} masks done; run the other shards (or rerun) to publish the dataset"
    return SynthesisSummary(
        masks=len(items), masks_skipped=sum(r["skipped"] is not None for r in done),
        masks_with_accepted=sum(bool(r["accepted"]) for r in done), candidates=cands, accepted=acc,
        relaxed=sum(1 for r in done for a in r["accepted"] if a["relaxed"]),
        acceptance_rate=acc / cands if cands else 0.0, seconds=round(seconds, 3),
        slices_per_second=round(cands / seconds, 4) if seconds else 0.0, filter=o.filter_id, generator=generator_id,
        dataset=dataset, complete=complete, note=note, settings=_settings(o))


def _settings(o: SynthesisOptions) -> dict:
    """What made the dataset (profile filled in), without where it was written: the same run in another folder has
    the same settings."""
    return {k: v for k, v in json.loads(json.dumps(o.fingerprint(), default=str)).items()
            if k not in ("out_raw", "raw_root")}


def _assemble(items, work: Path, final: Path, out_raw: Path, o: SynthesisOptions, labels: dict[str, int],
              modality_key: str, generator_id: str) -> SynthesisSummary:
    from mrgen_nnunet.data.nnunet_raw import mrgen_key, write_dataset_json

    lock = work / "assemble.lock"
    if not _take_lock(lock):  # another shard is assembling
        return _summary(items, work, o, generator_id, None, complete=False)
    try:
        records = _records(items, work)
        accepted = [(a, r) for r in records for a in r["accepted"]]
        keep = {a["case"] for a, _ in accepted}
        if not keep:  # nnU-Net cannot train on numTraining 0: publish nothing, keep the scores for a look
            skipped = sum(r["skipped"] is not None for r in records)
            write_text_atomic("".join(json.dumps(r, sort_keys=True) + "\n" for r in records), work / "candidates.jsonl")
            raise MRGenError(f"no candidate was accepted ({skipped} of {len(records)} masks below --min-foreground), "
                             "nothing to publish", work / "candidates.jsonl",
                             "see the scores there; lower --min-foreground or --iou/--conf and rerun with --force")
        for sub, suffix in (("imagesTr", "_0000.nii.gz"), ("labelsTr", ".nii.gz")):
            for p in (work / sub).iterdir():  # files of masks redone after a kill that are not accepted now
                if not p.name.endswith(suffix) or p.name[: -len(suffix)] not in keep:
                    p.unlink()
        provenance = "".join(json.dumps({k: v for k, v in {**r, **a, "organs": _organ_scores(r, a["try"])}.items()
                                         if k not in ("candidates", "accepted", "seconds")}, sort_keys=True) + "\n"
                             for a, r in accepted)
        write_text_atomic(provenance, work / "provenance.jsonl")
        write_text_atomic("".join(json.dumps({k: v for k, v in r.items() if k != "seconds"}, sort_keys=True) + "\n"
                                  for r in records), work / "candidates.jsonl")
        channel = "".join(c for c in o.target if c.isalnum() or c in "-_") or "MRI"
        extra = {"mrgen": mrgen_key(modality_key, "slices", {a["case"]: r["patient"] for a, r in accepted},
                                    sorted(keep), None, "provenance.jsonl")}
        write_dataset_json(work, labels, {"0": channel}, len(keep), extra, dataset_name=final.name)
        rows = [p for p in (work / "rows" / f"{r['source_case']}.png" for r in records) if p.is_file()]
        picks = sorted({round(i) for i in np.linspace(0, len(rows) - 1, min(SHEET_ROWS, len(rows)))})
        stack_rows([rows[i] for i in picks], work / "contact_sheet.png")  # spread over patients and slices
        summary = _summary(items, work, o, generator_id, str(final), complete=True)
        write_text_atomic(json.dumps(summary.to_dict(), indent=1, sort_keys=True), work / "summary.json")
        for name in ("items", "rows"):
            shutil.rmtree(work / name)
        (work / "run.json").unlink()
        _publish(work, final, out_raw, o.out_dataset, o.force)
    finally:
        shutil.rmtree(lock, ignore_errors=True)
    return summary


def _take_lock(lock: Path) -> bool:
    """mkdir `lock` holding a `<host>-<pid>` file; a lock whose owner process on this host is dead (SIGKILL during
    assembly) is taken over. False when a live process (or another host) holds it."""
    import socket

    host = socket.gethostname()
    try:
        lock.mkdir()
    except FileNotFoundError:  # another shard has published the dataset meanwhile (the work folder is gone)
        return False
    except FileExistsError:
        owners = [p.name.rsplit("-", 1) for p in lock.iterdir()] if lock.is_dir() else []
        if any(h != host or not pid.isdigit() or process_alive(int(pid)) for h, pid in owners):
            return False
        shutil.rmtree(lock, ignore_errors=True)
        return _take_lock(lock)
    (lock / f"{host}-{os.getpid()}").touch()
    return True


def _organ_scores(record: dict, try_index: int) -> dict:
    c = record["candidates"][try_index]
    return {"scores": c["organs"], "unrequested": c["unrequested"]}


def _publish(work: Path, final: Path, out_raw: Path, dataset_id: int, force: bool) -> None:
    """Rename the finished work folder to `final`, replacing datasets with the same id only with `force`."""
    old = sorted(p for p in out_raw.glob(f"Dataset{dataset_id:03d}_*") if p.is_dir())
    if old and not force:
        raise MRGenError(f"dataset id {dataset_id} is already used by {old[0].name}", out_raw,
                         "pass --force to replace it")
    trash = [out_raw / f".{p.name}.old-{uuid.uuid4().hex[:8]}" for p in old]
    for p, t in zip(old, trash, strict=True):
        os.replace(p, t)
    shutil.rmtree(work / "assemble.lock")
    os.replace(work, final)
    for t in trash:
        shutil.rmtree(t, ignore_errors=True)
