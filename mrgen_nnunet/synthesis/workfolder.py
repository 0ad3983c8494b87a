"""The hidden work folder of a synthesis run: resume state, per-item writes, assembly and publishing.

`raw_root/.mrgen-partial-DatasetNNN_NAME/` (invisible to nnU-Net):

    run.json                the options that determine the output (a resumed run must match them)
    imagesTr/ labelsTr/     accepted cases, written atomically
    items/<case>.json       one per finished source mask: its candidates, scores, accepted cases (the commit point)
    rows/<case>.png         contact-sheet rows
    assemble.lock/          held (a `<host>-<pid>` file) by the one process assembling the dataset

When every mask is done, dataset.json, provenance.jsonl, candidates.jsonl, summary.json and contact_sheet.png are
written and the folder is published as `DatasetNNN_NAME` by `nnunet_raw.publish_dataset`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import write_bytes_atomic, write_image, write_text_atomic
from mrgen_nnunet.data.nnunet_raw import mrgen_key, process_alive, publish_dataset, write_dataset_json
from mrgen_nnunet.data.normalize import denormalize_slice
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.filtering.selection import Thresholds, passes, select
from mrgen_nnunet.synthesis.contact_sheet import Candidate, caption, png_bytes, render_row, stack_rows
from mrgen_nnunet.synthesis.manifest import MaskItem
from mrgen_nnunet.synthesis.options import SynthesisSummary
from mrgen_nnunet.synthesis.scheduler import Mask

SHEET_ROWS, SHEET_CANDIDATES = 8, 6  # contact sheet: masks (spread over the manifest), candidates per mask
PREFIX = ".mrgen-partial-"


def work_folder(final: Path) -> Path:
    """The hidden sibling in which the dataset `final` (raw_root/DatasetNNN_NAME) is made."""
    return final.parent / f"{PREFIX}{final.name}"


def prepare(work: Path, fingerprint: dict, force: bool) -> None:
    """Create (or resume) `work` for a run with this fingerprint; a folder of a run with other options is started
    over when none of its masks is finished or with `force`, refused otherwise."""
    text = json.dumps(fingerprint, sort_keys=True, indent=1, default=str)
    run_json = work / "run.json"
    if run_json.is_file() and run_json.read_text(encoding="utf-8") != text:
        if not force and any((work / "items").glob("*.json")):  # no finished mask: nothing to lose
            raise MRGenError("an unfinished synthesis with other options exists", work,
                             "rerun with the same options to resume, or pass --force to start over")
        shutil.rmtree(work)
    for sub in ("imagesTr", "labelsTr", "items", "rows"):
        (work / sub).mkdir(parents=True, exist_ok=True)
    if not run_json.is_file():
        write_text_atomic(text, run_json)


def _item_file(work: Path, case: str) -> Path:
    return work / "items" / f"{case}.json"


def all_done(work: Path, items: list[MaskItem]) -> bool:
    """Whether every item's file (its commit point) exists."""
    return all(_item_file(work, it.source.case).is_file() for it in items)


def write_chunk(masks: list[Mask], work: Path, generator_id: str, since: float, thresholds: Thresholds,
                samples_per_mask: int, relax: float, relax_keep: int) -> list[dict]:
    """Select, write accepted cases and contact-sheet rows, then the item files (the commit point) of a chunk;
    returns the item records. Each item's `seconds` is its share of the wall time since `since` (perf_counter)."""
    import time

    records = [_write_item(m, work, generator_id, thresholds, samples_per_mask, relax, relax_keep) for m in masks]
    now = time.perf_counter()
    for r in records:
        r["seconds"] = (now - since) / len(records)
        write_text_atomic(json.dumps(r, sort_keys=True, indent=1), _item_file(work, r["source_case"]))
    return records


def _write_item(m: Mask, work: Path, generator_id: str, thresholds: Thresholds, samples_per_mask: int,
                relax: float, relax_keep: int) -> dict:
    """Keep the best candidates of mask `m` (`filtering.selection.select`; the first ones without a filter),
    write them and the mask's contact-sheet row; returns its record."""
    record, s, images, scores = m.record, m.item.source, m.images, m.scores
    record["generator"] = generator_id
    if record["skipped"] is not None:
        return record
    if record["filter"] == "none":
        kept, relaxed = list(range(len(images)))[:samples_per_mask], False
    else:
        sel = select(scores, thresholds, samples_per_mask, relax, relax_keep)
        kept, relaxed = sel.kept, sel.relaxed
    for t, sc in enumerate(scores):
        record["candidates"].append({"try": t, "seed": m.item.seeds[t], **sc.to_dict(),
                                     "passed": passes(sc, thresholds), "accepted": t in kept})
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


def records(items: list[MaskItem], work: Path) -> list[dict]:
    """The item records of `items` (all must be done)."""
    return [json.loads(_item_file(work, it.source.case).read_text(encoding="utf-8")) for it in items]


def summarize(items: list[MaskItem], work: Path, filter_id: str, generator_id: str, settings: dict,
              dataset: str | None, complete: bool) -> SynthesisSummary:
    """The counts over the items done so far."""
    done = records([it for it in items if _item_file(work, it.source.case).is_file()], work)
    cands = sum(len(r["candidates"]) for r in done)
    acc = sum(len(r["accepted"]) for r in done)
    seconds = sum(r["seconds"] for r in done)
    note = "filter 'none': no quality check, the first samples of each mask were kept" if filter_id == "none" else ""
    if not complete:
        note = f"{len(done)}/{len(items)} masks done; run the other shards (or rerun) to publish the dataset"
    return SynthesisSummary(
        masks=len(items), masks_skipped=sum(r["skipped"] is not None for r in done),
        masks_with_accepted=sum(bool(r["accepted"]) for r in done), candidates=cands, accepted=acc,
        relaxed=sum(1 for r in done for a in r["accepted"] if a["relaxed"]),
        acceptance_rate=acc / cands if cands else 0.0, seconds=round(seconds, 3),
        slices_per_second=round(cands / seconds, 4) if seconds else 0.0, filter=filter_id, generator=generator_id,
        dataset=dataset, complete=complete, note=note, settings=settings)


def assemble(items: list[MaskItem], work: Path, final: Path, dataset_id: int, force: bool, labels: dict[str, int],
             modality_key: str, channel: str, summary: SynthesisSummary) -> None:
    """Write dataset.json, provenance, candidates, contact sheet and `summary` into `work` and publish it as
    `final` (the caller holds `assembly_lock`). Nothing is published when no candidate was accepted."""
    recs = records(items, work)
    accepted = [(a, r) for r in recs for a in r["accepted"]]
    keep = {a["case"] for a, _ in accepted}
    if not keep:  # nnU-Net cannot train on numTraining 0: publish nothing, keep the scores for a look
        skipped = sum(r["skipped"] is not None for r in recs)
        write_text_atomic("".join(json.dumps(r, sort_keys=True) + "\n" for r in recs), work / "candidates.jsonl")
        raise MRGenError(f"no candidate was accepted ({skipped} of {len(recs)} masks below --min-foreground), "
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
                              for r in recs), work / "candidates.jsonl")
    extra = {"mrgen": mrgen_key(modality_key, "slices", {a["case"]: r["patient"] for a, r in accepted},
                                sorted(keep), None, "provenance.jsonl")}
    write_dataset_json(work, labels, {"0": channel}, len(keep), extra, dataset_name=final.name)
    rows = [p for p in (work / "rows" / f"{r['source_case']}.png" for r in recs) if p.is_file()]
    picks = sorted({round(i) for i in np.linspace(0, len(rows) - 1, min(SHEET_ROWS, len(rows)))})
    stack_rows([rows[i] for i in picks], work / "contact_sheet.png")  # spread over patients and slices
    write_text_atomic(json.dumps(summary.to_dict(), indent=1, sort_keys=True), work / "summary.json")
    for name in ("items", "rows", "assemble.lock"):
        shutil.rmtree(work / name)
    (work / "run.json").unlink()
    publish_dataset(work, final, dataset_id, force, "--out-dataset")


def _organ_scores(record: dict, try_index: int) -> dict:
    c = record["candidates"][try_index]
    return {"scores": c["organs"], "unrequested": c["unrequested"]}


@contextmanager
def assembly_lock(work: Path) -> Iterator[bool]:
    """`with assembly_lock(work) as held:` — held is False when another process is assembling this dataset; the
    lock is released on leaving when it was taken."""
    lock = work / "assemble.lock"
    held = _take_lock(lock)
    try:
        yield held
    finally:
        if held:
            shutil.rmtree(lock, ignore_errors=True)


def _take_lock(lock: Path) -> bool:
    """mkdir `lock` holding a `<host>-<pid>` file; a lock whose owner process on this host is dead (SIGKILL during
    assembly) is taken over. False when a live process (or another host) holds it."""
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
