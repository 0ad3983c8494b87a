"""What a synthesis run is asked to do (`SynthesisOptions`) and what it did (`SynthesisSummary`).

`fingerprint()` is the part of the options that determines the output (a resumed run must match it); `settings()`
is the same without where the dataset was written. `target_names` is the one place the target name is cleaned.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from mrgen_nnunet.filtering.selection import Thresholds


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

    def settings(self) -> dict:
        """What made the dataset (profile filled in), without where it was written: the same run in another folder
        has the same settings."""
        return {k: v for k, v in json.loads(json.dumps(self.fingerprint(), default=str)).items()
                if k not in ("out_raw", "raw_root")}


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


def target_names(target: str, name: str | None) -> tuple[str, str]:
    """(dataset name, dataset.json channel name) for the target modality as typed: the name is `name` or
    `MRGen_<target>` with every other character than letters and digits as `_` (`T2-SPIR` -> `MRGen_T2_SPIR`);
    the channel keeps letters, digits, `-` and `_` (`T2-SPIR`), "MRI" when nothing is left."""
    dataset = name or "MRGen_" + "".join(c if c.isalnum() else "_" for c in target)
    channel = "".join(c for c in target if c.isalnum() or c in "-_") or "MRI"
    return dataset, channel
