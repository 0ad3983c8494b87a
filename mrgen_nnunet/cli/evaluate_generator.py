"""`mrgen-nnunet evaluate-generator` and `mrgen-nnunet evaluate-autoencoder`: parse, resolve paths, call."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

from mrgen_nnunet.errors import MRGenError


def resolve_input(value: str, option: str) -> Path:
    """An existing folder as given, else an nnU-Net raw dataset id/name looked up in $nnUNet_raw."""
    path = Path(value)
    if path.is_dir():
        return path
    raw = os.environ.get("nnUNet_raw")
    if not raw:
        raise MRGenError(f"{value!r} is not a folder and $nnUNet_raw is not set", option,
                         "pass a folder, or set nnUNet_raw to look up a dataset id/name")
    from mrgen_nnunet.data.nnunet_raw import find_dataset

    return find_dataset(raw, value)


def evaluate_generator(
    real: str = typer.Option(..., "--real", help="Real target-sequence images: folder or nnU-Net raw dataset (id/name/folder)."),
    synthetic: str = typer.Option(..., "--synthetic", help="Synthetic images: folder or nnU-Net raw dataset."),
    out: Path = typer.Option(..., "--out", help="Output folder (JSON, markdown, PNGs)."),
    features: str = typer.Option("inception", "--features", help="inception | radimagenet | biomedclip."),
    weights: str = typer.Option(None, "--weights", help="Extractor weights (file; BiomedCLIP: open_clip folder or hf-hub: id). "
                                "Without it the extractor is random-initialised."),
    clip_weights: str = typer.Option(None, "--clip-weights", help="BiomedCLIP folder/hf-hub: id for CLIP image/text "
                                     "similarity (default: --weights when --features biomedclip)."),
    prompt: str = typer.Option(None, "--prompt", help="Target prompt for CLIP text similarity."),
    dims: int = typer.Option(2048, "--dims", help="Inception feature size: 2048 (standard FID), 768, 192 or 64."),
    resolution: int = typer.Option(256, "--resolution", help="Slices are normalised to N×N."),
    max_slices: int = typer.Option(None, "--max-slices", help="Random subset per set (seeded)."),
    batch_size: int = typer.Option(16, "--batch-size"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Fréchet distance, BiomedCLIP similarity and per-label intensity statistics of synthetic vs real slices."""
    from mrgen_nnunet.evaluation.generator_metrics import evaluate_generator as run

    if clip_weights is None and features == "biomedclip" and weights is not None:
        clip_weights = weights
    result = run(resolve_input(real, "--real"), resolve_input(synthetic, "--synthetic"), out, features=features,
                 weights=weights, resolution=resolution, max_slices=max_slices, clip_weights=clip_weights,
                 prompt=prompt, batch_size=batch_size, seed=seed, dims=dims)
    console = Console()
    if result["random_feature_weights"]:
        console.print(f"[bold yellow]WARNING: {result['caveat']}[/]", soft_wrap=True)
    console.print(f"Fréchet distance ({features}): {result['fid']:.4f}   "
                  f"({result['real_slices']} real, {result['synthetic_slices']} synthetic slices) -> {out}", soft_wrap=True)


def evaluate_autoencoder(
    vae: Path = typer.Option(..., "--vae", help="diffusers AutoencoderKL folder, e.g. <generator>/vae."),
    images: str = typer.Option(..., "--images", help="Held-out images: folder or nnU-Net raw dataset."),
    out: Path = typer.Option(..., "--out", help="Output folder (JSON, markdown, PNG)."),
    resolution: int = typer.Option(256, "--resolution", help="Slices are normalised to N×N."),
    max_slices: int = typer.Option(None, "--max-slices", help="Random subset (seeded)."),
    batch_size: int = typer.Option(8, "--batch-size"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """PSNR/SSIM of VAE reconstructions of held-out slices."""
    from mrgen_nnunet.evaluation.generator_metrics import evaluate_autoencoder as run

    result = run(vae, resolve_input(images, "--images"), out, resolution=resolution, max_slices=max_slices,
                 batch_size=batch_size, seed=seed)
    Console().print(f"PSNR {result['psnr']:.3f} dB, SSIM {result['ssim']:.4f} over {result['slices']} slices -> {out}")
