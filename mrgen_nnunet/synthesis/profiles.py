"""Synthesis profiles: MRGen's reference settings, and the fast default.

    reference  MRGen as released: fp32, DDIM 50 steps, CFG 7, 20 candidates per mask generated in batches of 10
               (one mask per batch), no early stop, SAM2 re-encodes the image once per organ, then select.
    fast       DPM-Solver++ 20 steps, CFG 7 in one UNet call (cond + uncond stacked), candidates of up to 4 masks (8 per call; raise both on a GPU)
               in one generator call, early stop per mask once `samples_per_mask` candidates passed, SAM2 encodes
               each image once (batched), filtering of one batch overlapped with generating the next (background
               thread), bf16 autocast and channels_last on CUDA only, SDPA attention, optional torch.compile.

A profile only fills the options left unset (None): explicit flags win. Seeds are per (mask, try) and a batch's
composition depends only on the manifest and the profile (masks are batched in fixed consecutive chunks), so a
profile gives the same output for the same seed, resumed or sharded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import torch

from mrgen_nnunet.errors import MRGenError


@dataclass(frozen=True)
class Profile:
    """The settings a profile fills in (names = SynthesisOptions fields)."""

    steps: int
    scheduler: str  # "ddim" | "dpm"
    guidance: float
    max_tries: int  # candidates per mask at most
    batch_size: int  # candidates per generator call
    masks_per_batch: int  # masks whose candidates may share one generator call (1 = MRGen)
    early_stop: bool  # stop generating for a mask once samples_per_mask candidates passed
    sam2_encode: str  # "organ" (MRGen: set_image once per organ) | "image" (once per image, batched)
    overlap: bool  # filter batch i in a background thread while batch i+1 is generated
    mixed_precision: bool  # bf16 autocast + channels_last, CUDA only (CPU stays fp32)
    compile: bool  # torch.compile the UNet and ControlNet


PROFILES = {
    "reference": Profile(steps=50, scheduler="ddim", guidance=7.0, max_tries=20, batch_size=10, masks_per_batch=1,
                         early_stop=False, sam2_encode="organ", overlap=False, mixed_precision=False, compile=False),
    "fast": Profile(steps=20, scheduler="dpm", guidance=7.0, max_tries=20, batch_size=8, masks_per_batch=4,
                    early_stop=True, sam2_encode="image", overlap=True, mixed_precision=True, compile=False),
}
SAM2_ENCODE = ("organ", "image")
SCHEDULERS = ("ddim", "dpm")


def get_profile(name: str) -> Profile:
    """The profile called `name`; MRGenError listing the known ones otherwise."""
    if name not in PROFILES:
        raise MRGenError(f"unknown profile {name!r}", "--profile", f"use one of {', '.join(PROFILES)}")
    return PROFILES[name]


def resolve_profile(options):
    """`options` (a SynthesisOptions) with every field that is None filled from `options.profile`."""
    profile = asdict(get_profile(options.profile))
    filled = {f.name: profile[f.name] for f in fields(options) if f.name in profile and getattr(options, f.name) is None}
    resolved = replace(options, **filled)
    check_options(resolved)
    return resolved


def check_options(o) -> None:
    """Refuse out-of-range settings of a resolved SynthesisOptions before anything is loaded or written."""
    from mrgen_nnunet.filtering.backends import FILTERS
    from mrgen_nnunet.validation import at_least, between, check_device, one_of

    one_of(o.filter, FILTERS, "--filter")
    one_of(o.sam2_encode, SAM2_ENCODE, "--sam2-encode")
    one_of(o.scheduler, SCHEDULERS, "--scheduler")
    one_of(o.mode, ("mask", "translate"), "--mode")
    one_of(o.translate, ("sdedit", "inversion"), "--translate")
    between(o.strength, 0.0, 1.0, "--strength", "a share of the schedule, e.g. 0.6 (0 keeps the source image)")
    if o.mode == "mask" and (o.strength != 0.6 or o.translate != "sdedit" or o.source_prompt):
        raise MRGenError("--strength/--translate/--source-prompt apply to --mode translate only", "--mode",
                         "add --mode translate, or drop those options")
    at_least(o.steps, 1, "--steps", "pass 1 or more sampling steps (reference 50, fast 20)")
    at_least(o.guidance, 1, "--guidance", "use 1 (no guidance) or more; MRGen uses 7")
    at_least(o.masks_per_batch, 1, "--masks-per-batch", "use 1 (MRGen) or more")
    at_least(o.batch_size, 1, "--batch-size")
    at_least(o.samples_per_mask, 1, "--samples-per-mask")
    at_least(o.max_tries, o.samples_per_mask, "--max-tries", "use at least --samples-per-mask tries")
    if not 0 <= o.shard < o.num_shards:
        raise MRGenError(f"shard {o.shard}/{o.num_shards} is out of range", "--shard", "use i/n with 0 <= i < n")
    t = o.thresholds
    for option, value in (("--iou", t.iou), ("--conf", t.conf), ("--mean-iou", t.mean_iou),
                          ("--mean-conf", t.mean_conf)):
        between(value, 0.0, 1.0, option)
    between(t.min_foreground, 0.0, 1.0, "--min-foreground", "a fraction of the slice, e.g. 0.005 (0.5 %)")
    check_device(o.device)


def prepare_pipeline(pipe, device: str, mixed_precision: bool, compile: bool) -> None:
    """Speed settings on a loaded MRGenPipeline, in place: SDPA attention everywhere; on CUDA with
    `mixed_precision`, channels_last memory format; with `compile`, torch.compile of UNet and ControlNet."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    for model in (pipe.unet, pipe.controlnet, pipe.vae):
        if model is not None:
            model.set_attn_processor(AttnProcessor2_0())
    if mixed_precision and device.startswith("cuda"):
        for model in (pipe.unet, pipe.controlnet, pipe.vae):
            model.to(memory_format=torch.channels_last)
    if compile:
        pipe.unet = torch.compile(pipe.unet)
        pipe.controlnet = torch.compile(pipe.controlnet)


def autocast(device: str, mixed_precision: bool):
    """bf16 autocast on CUDA when `mixed_precision`, else a no-op context (CPU stays fp32)."""
    enabled = mixed_precision and device.startswith("cuda")
    return torch.autocast("cuda" if enabled else "cpu", dtype=torch.bfloat16, enabled=enabled)


def filter_for_profile(filt, sam2_encode: str):
    """The filter as the options ask: a SAM2 filter is wrapped in `PerOrganSAM2` for `sam2_encode == "organ"`."""
    if filt.name == "sam2" and sam2_encode == "organ":
        from mrgen_nnunet.filtering.sam2_filter import PerOrganSAM2

        return PerOrganSAM2(filt)
    return filt
