"""The batch scheduler: chunks of source masks -> generator calls -> filter scores, per mask in try order.

Masks are batched in fixed chunks of `masks_per_batch` consecutive manifest items (the unit of batching, sharding
and resume). Within a chunk, generator calls take up to `batch_size` candidates from the chunk's masks in order
(each mask as many as it still wants); with `overlap`, two chunks alternate so that one chunk's batch is filtered
in a background thread while the other chunk's next batch is generated. A chunk's batches do not depend on the
other chunk, so the output is the same with or without overlap.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mrgen_nnunet.data.normalize import normalize_label, normalize_slice
from mrgen_nnunet.filtering.selection import Thresholds, passes, should_skip
from mrgen_nnunet.synthesis.manifest import MaskItem


@dataclass
class Mask:
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


def shard_chunks(items: list[MaskItem], masks_per_batch: int, shard: int, num_shards: int) -> list[list[MaskItem]]:
    """Shard `shard` of `num_shards` of the consecutive groups of `masks_per_batch` items (round robin over the
    groups: shards are disjoint and cover every item)."""
    chunks = [items[i: i + masks_per_batch] for i in range(0, len(items), masks_per_batch)]
    return [c for k, c in enumerate(chunks) if k % num_shards == shard]


def finished_chunks(chunks: list[list[MaskItem]], pipe, filt, labels: dict[str, int], modality, size: int,
                    o) -> Iterator[list[Mask]]:
    """Generate and filter every mask of `chunks` (SynthesisOptions `o`); yields each chunk's masks when none of
    them can want more candidates. `size` is the generator's resolution."""
    from concurrent.futures import ThreadPoolExecutor

    tries = o.max_tries if filt.checks else o.samples_per_mask
    early_stop = bool(o.early_stop and filt.checks)
    queue = list(reversed(chunks))
    running: list[tuple[list[Mask], object]] = []  # (masks of a chunk, pending filter future or None)
    with ThreadPoolExecutor(1) as pool:
        while queue or running:
            while queue and len(running) < (2 if o.overlap else 1):
                running.append(([prepare_mask(it, labels, modality, size, filt.id, o.thresholds, tries)
                                 for it in queue.pop()], None))
            masks, pending = running.pop(0)
            if pending is not None:
                collect(*pending.result())
            batch = next_batch(masks, o.batch_size, o.samples_per_mask, o.thresholds, early_stop)
            if not batch:
                yield masks
                continue
            images, maps = generate(pipe, batch, o)
            future = pool.submit(score, batch, images, maps, labels, filt)
            if not o.overlap or all(m.asked == m.tries for m in masks):  # nothing left to overlap with
                collect(*future.result())
                future = None
            if all(m.asked == m.tries for m in masks):  # no mask can want more: finish now, not a turn later
                yield masks
                continue
            running.append((masks, future))


def prepare_mask(item: MaskItem, labels: dict[str, int], modality, size: int, filter_id: str,
                 thresholds: Thresholds, tries: int) -> Mask:
    """Load and normalise the source slice, build its prompt; a mask below min_foreground gets `skipped`."""
    from mrgen_nnunet.data.prompts import build_prompt

    s = item.source
    image, label, geometry = s.load()
    names = {v: k for k, v in labels.items()}
    organs = [names[v] for v in sorted(np.unique(label).tolist()) if v != 0 and v in names]
    prompt = build_prompt(modality.key, modality.attributes, modality.region, organs)
    record = {"source_case": s.case, "patient": s.patient, "source_image": Path(s.image_file).name,
              "source_slice": s.slice_index, "prompt": prompt, "generator": None, "filter": filter_id,
              "skipped": None, "relaxed": False, "candidates": [], "accepted": []}
    if should_skip(label, thresholds):
        record["skipped"] = f"foreground <= {thresholds.min_foreground:.2%}"
        return Mask(item, record)
    x, info = normalize_slice(image, size)
    pixel_spacing = info.model_spacing(geometry.spacing[0])
    return Mask(item, record, x, normalize_label(label, info), label, info, geometry, pixel_spacing, tries)


def wanted(m: Mask, samples_per_mask: int, thresholds: Thresholds, early_stop: bool) -> int:
    """How many more candidates mask `m` wants now (all outstanding scores of its chunk are in); with
    `early_stop`, none once `samples_per_mask` of its candidates passed."""
    left = m.tries - m.asked
    if early_stop:
        return min(left, max(0, samples_per_mask - sum(passes(sc, thresholds) for sc in m.scores)))
    return left


def next_batch(masks: list[Mask], batch_size: int, samples_per_mask: int, thresholds: Thresholds,
               early_stop: bool) -> list[tuple[Mask, int]]:
    """Up to `batch_size` (mask, try) pairs, masks in chunk order, each taking as many tries as it wants."""
    batch = []
    for m in masks:
        n = min(wanted(m, samples_per_mask, thresholds, early_stop), batch_size - len(batch))
        batch.extend((m, t) for t in range(m.asked, m.asked + n))
        m.asked += n
    return batch


def generate(pipe, batch: list[tuple[Mask, int]], o) -> tuple[np.ndarray, np.ndarray]:
    """One generator call for the batch with the sampling settings of SynthesisOptions `o` ->
    (images (B, N, N) float32 in [-1, 1], label maps (B, N, N) uint8)."""
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


def score(batch, images, maps, labels, filt):
    """Filter one generated batch (runs in the background thread with `overlap`)."""
    return batch, images, filt.score(images, maps, labels, [m.pixel_spacing for m, _ in batch])


def collect(batch, images, scores) -> None:
    """Append each candidate's image and scores to its mask, in try order."""
    for (m, _), image, sc in zip(batch, images, scores, strict=True):
        m.images.append(image)
        m.scores.append(sc)
