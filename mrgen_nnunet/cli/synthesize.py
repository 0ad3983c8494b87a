"""`mrgen-nnunet synthesize`: source masks -> target-sequence slices -> filter -> a new nnU-Net dataset."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from mrgen_nnunet.errors import MRGenError

IO, GEN, FILTER, SCALE = "Input and output", "Generation", "Filter", "Scale-out"  # --help panels


def _shard(text: str | None) -> tuple[int, int]:
    """`--shard i/n`, else RANK/WORLD_SIZE (`accelerate launch --multi_gpu`, torchrun), else the MPI rank/size
    (`accelerate launch --cpu --mpirun_hostfile`: Open MPI or MPICH/Intel MPI), else 0/1."""
    if text:
        try:
            i, n = (int(v) for v in text.split("/"))
        except ValueError:
            raise MRGenError(f"invalid --shard {text!r}", "--shard", "use i/n, e.g. 0/4") from None
        return i, n
    for rank, size in (("RANK", "WORLD_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"), ("PMI_RANK", "PMI_SIZE")):
        if rank in os.environ:
            return int(os.environ[rank]), int(os.environ.get(size, 1))
    return 0, 1


def _device(device: str) -> str:
    """`auto` -> cuda, mps or cpu; `cuda` under a multi-process launcher -> `cuda:LOCAL_RANK`."""
    from mrgen_nnunet.environment import resolve_device

    device = resolve_device(device)
    if device == "cuda" and "LOCAL_RANK" in os.environ:
        return f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return device


def synthesize(
    target: str = typer.Option(..., "--target", rich_help_panel=IO, help="Target sequence, e.g. LGE or T2-SPIR."),
    source: str = typer.Option(..., "--source", rich_help_panel=IO,
                               help="Source nnU-Net raw slice dataset (id, name, folder) or index .jsonl with labels."),
    generator: Path = typer.Option(..., "--generator", rich_help_panel=IO,
                                   help="Generator folder (ours or MRGen's released layout)."),
    out_dataset: int = typer.Option(..., "--out-dataset", rich_help_panel=IO,
                                    help="Dataset id of the new nnU-Net dataset."),
    out_raw: Path | None = typer.Option(None, "--out-raw", rich_help_panel=IO,
                                        help="nnU-Net raw folder to write to [default: $nnUNet_raw]."),
    controlnet: str | None = typer.Option(None, "--controlnet", rich_help_panel=IO,
                                          help="ControlNet folder, or name in MRGen's controlnet_model_zoo."),
    name: str | None = typer.Option(None, "--name", rich_help_panel=IO,
                                    help="Dataset name [default: MRGen_<target>]."),
    profile: str = typer.Option("fast", "--profile", rich_help_panel=GEN,
                                help="reference (MRGen's settings) | fast; explicit flags below win."),
    samples_per_mask: int = typer.Option(2, "--samples-per-mask", rich_help_panel=GEN,
                                         help="Images kept per source mask."),
    max_tries: int | None = typer.Option(None, "--max-tries", rich_help_panel=GEN,
                                         help="Candidates generated per mask at most [profile: 20]."),
    batch_size: int | None = typer.Option(None, "--batch-size", rich_help_panel=GEN,
                                          help="Candidates per generator call [reference 10, fast 8]."),
    masks_per_batch: int | None = typer.Option(None, "--masks-per-batch", rich_help_panel=GEN,
                                               help="Masks sharing one call [reference 1, fast 4]."),
    early_stop: bool | None = typer.Option(None, "--early-stop/--no-early-stop", rich_help_panel=GEN,
                                           help="Stop a mask once k passed [fast]."),
    mode: str = typer.Option("mask", "--mode", rich_help_panel=GEN,
                             help="mask (MRGen: an image from the mask alone) | translate (from the source image "
                                  "and its mask: the labels stay valid by construction)."),
    strength: float = typer.Option(0.6, "--strength", rich_help_panel=GEN,
                                   help="translate: share of the schedule run from the source image "
                                        "(0 = unchanged, 1 = from noise)."),
    translate: str = typer.Option("sdedit", "--translate", rich_help_panel=GEN,
                                  help="translate: sdedit (noise the source latent) | inversion (DDIB: DDIM-invert "
                                       "under --source-prompt and the mask)."),
    source_prompt: str = typer.Option("", "--source-prompt", rich_help_panel=GEN,
                                      help="translate inversion: the source sequence's prompt (empty = the "
                                           "unconditional prompt)."),
    steps: int | None = typer.Option(None, "--steps", rich_help_panel=GEN,
                                     help="Denoising steps [reference 50, fast 20]."),
    scheduler: str | None = typer.Option(None, "--scheduler", rich_help_panel=GEN,
                                         help="ddim | dpm [reference ddim, fast dpm]"),
    guidance: float | None = typer.Option(None, "--guidance", rich_help_panel=GEN,
                                          help="Classifier-free guidance scale [profile: 7.0]."),
    sam2_encode: str | None = typer.Option(None, "--sam2-encode", rich_help_panel=FILTER,
                                           help="organ (MRGen) | image [fast]"),
    overlap: bool | None = typer.Option(None, "--overlap/--no-overlap", rich_help_panel=GEN,
                                        help="Filter while generating [fast]."),
    mixed_precision: bool | None = typer.Option(None, "--mixed-precision/--fp32", rich_help_panel=GEN,
                                                help="bf16 autocast on CUDA [fast]."),
    compile_models: bool | None = typer.Option(None, "--compile/--no-compile", rich_help_panel=GEN,
                                               help="torch.compile UNet+ControlNet [off]."),
    seed: int = typer.Option(0, "--seed", rich_help_panel=GEN,
                             help="Seed of every candidate's noise (same seed, same dataset)."),
    filter_name: str = typer.Option("sam2", "--filter", rich_help_panel=FILTER, help="sam2 | nnunet | none"),
    sam2_config: str = typer.Option("tiny", "--sam2-config", rich_help_panel=FILTER,
                                    help="tiny | small | base_plus | large or configs/sam2.1/...yaml"),
    sam2_checkpoint: Path | None = typer.Option(None, "--sam2-checkpoint", rich_help_panel=FILTER,
                                                help="SAM2 weights (.pt); needed for --filter sam2."),
    sam2_prompt: str = typer.Option("mask", "--sam2-prompt", rich_help_panel=FILTER,
                                    help="mask (MRGen) | box | box+mask"),
    filter_model: Path | None = typer.Option(None, "--filter-model", rich_help_panel=FILTER,
                                             help="Trained nnU-Net model folder (--filter nnunet)."),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint", rich_help_panel=FILTER,
                                          help="Load --filter-model's checkpoint with full pickle (runs its code; trusted files only)."),
    iou: float = typer.Option(0.7, "--iou", rich_help_panel=FILTER,
                              help="Per-organ IoU of the filter's segmentation vs the mask, at least."),
    conf: float = typer.Option(0.8, "--conf", rich_help_panel=FILTER, help="Per-organ filter confidence, at least."),
    mean_iou: float = typer.Option(0.8, "--mean-iou", rich_help_panel=FILTER,
                                   help="Mean IoU over the mask's organs, at least."),
    mean_conf: float = typer.Option(0.9, "--mean-conf", rich_help_panel=FILTER,
                                    help="Mean confidence over the mask's organs, at least."),
    min_foreground: float = typer.Option(0.005, "--min-foreground", rich_help_panel=FILTER,
                                         help="Skip masks whose foreground fraction is at most this."),
    shard: str | None = typer.Option(None, "--shard", rich_help_panel=SCALE,
                                     help="i/n: this process's share [default: RANK/WORLD_SIZE]."),
    device: str = typer.Option("auto", "--device", rich_help_panel=GEN,
                               help="auto (cuda, else mps, else cpu) | cuda | cuda:N | mps | cpu."),
    force: bool = typer.Option(False, "--force", rich_help_panel=IO,
                               help="Replace an existing dataset with this id."),
    backend: str = typer.Option("local", "--backend", rich_help_panel=SCALE,
                                help="local | ray (Ray Data actor pool; extra [ray])."),
    workers: int = typer.Option(1, "--workers", rich_help_panel=SCALE, help="--backend ray: actors, one per device."),
    ray_address: str | None = typer.Option(None, "--ray-address", rich_help_panel=SCALE,
                                           help="--backend ray: cluster address [default: local]."),
) -> None:
    """Turn every labelled source slice into target-sequence images, keep those the filter accepts, write an nnU-Net dataset."""
    from mrgen_nnunet.filtering.selection import Thresholds
    from mrgen_nnunet.synthesis.run import SynthesisOptions
    from mrgen_nnunet.synthesis.run import synthesize as run

    raw = out_raw or (Path(os.environ["nnUNet_raw"]) if os.environ.get("nnUNet_raw") else None)
    if raw is None:
        raise MRGenError("no output raw folder", "--out-raw", "pass --out-raw or set nnUNet_raw")
    i, n = _shard(shard)
    device = _device(device)
    typer.echo(f"device: {device}")
    options = SynthesisOptions(
        target=target, source=source, generator=str(generator), out_raw=str(raw), out_dataset=out_dataset,
        name=name, controlnet=controlnet, raw_root=os.environ.get("nnUNet_raw") or str(raw),
        profile=profile, mode=mode, strength=strength, translate=translate, source_prompt=source_prompt,
        samples_per_mask=samples_per_mask, max_tries=max_tries, batch_size=batch_size,
        masks_per_batch=masks_per_batch, early_stop=early_stop, steps=steps, scheduler=scheduler, guidance=guidance,
        sam2_encode=sam2_encode, overlap=overlap, mixed_precision=mixed_precision, compile=compile_models, seed=seed,
        filter=filter_name, sam2_config=sam2_config,
        sam2_checkpoint=None if sam2_checkpoint is None else str(sam2_checkpoint), sam2_prompt=sam2_prompt,
        filter_model=None if filter_model is None else str(filter_model), trust_checkpoint=trust_checkpoint,
        thresholds=Thresholds(iou, conf, mean_iou, mean_conf, min_foreground), shard=i, num_shards=n,
        force=force, device=device)
    if backend not in ("local", "ray"):
        raise MRGenError(f"unknown backend {backend!r}", "--backend", "use local or ray")
    if backend == "ray":
        from mrgen_nnunet.synthesis.ray_backend import synthesize_ray

        summary = synthesize_ray(options, workers=workers, address=ray_address)
    else:
        summary = run(options)
    typer.echo(json.dumps(summary.to_dict(), indent=1))
