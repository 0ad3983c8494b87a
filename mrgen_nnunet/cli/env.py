"""`mrgen-nnunet env`: print versions, device, threads, nnU-Net variables and the local weights found."""

from __future__ import annotations

from pathlib import Path

import typer


def env(
    sam2_checkpoint: Path | None = typer.Option(None, "--sam2-checkpoint", help="SAM2 checkpoint (.pt) to look for."),
    biomedclip: Path | None = typer.Option(None, "--biomedclip", help="BiomedCLIP open_clip folder to look for."),
    generator: Path | None = typer.Option(None, "--generator", help="Generator folder (ours or MRGen's) to look for."),
) -> None:
    """Versions, device, threads, nnUNet_* variables and the nnUNet_extTrainer line: paste this into a bug report."""
    from mrgen_nnunet.environment import environment_report, format_report

    weights = {"sam2": sam2_checkpoint, "biomedclip": biomedclip, "generator": generator}
    typer.echo(format_report(environment_report(weights)))
