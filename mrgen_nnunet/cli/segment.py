"""`mrgen-nnunet segment plan|train|predict`: nnU-Net's own CLIs with our trainers on nnUNet_extTrainer.

Equivalent to `nnUNet_extTrainer=$(mrgen-nnunet trainer-path) nnUNetv2_train ...`; sets nnUNet_n_proc_DA=0 on
machines with <= 4 cores and picks the device (cuda, mps, cpu) unless --device names one.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from mrgen_nnunet.errors import MRGenError

app = typer.Typer(help="Plan, train and predict with nnU-Net v2 and the MRGen trainers.", no_args_is_help=True)

DATASET = typer.Argument(..., help="nnU-Net dataset id, e.g. 501")
CONFIGURATION = typer.Option("2d", "--configuration", "-c", help="nnU-Net configuration")
TRAINER = typer.Option("nnUNetTrainerMRGen", "--trainer", "-tr",
                       help="trainer class, e.g. nnUNetTrainerMRGen, nnUNetTrainerMRGen_5epochs_10it")
FOLD = typer.Option("0", "--fold", "-f", help="fold 0..4 or 'all'")
DEVICE = typer.Option("auto", "--device", help="auto (cuda, else mps, else cpu) | cuda | cuda:N | mps | cpu.")


def _env() -> dict[str, str]:
    from mrgen_nnunet.trainers.nnunet_run import nnunet_environment

    paths = {}
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        if not os.environ.get(key):
            raise MRGenError(f"{key} is not set", key, f"export {key}=/path/to/folder (nnU-Net's setup)")
        paths[key] = os.environ[key]
    small = (os.cpu_count() or 1) <= 4
    return nnunet_environment(paths["nnUNet_raw"], paths["nnUNet_preprocessed"], paths["nnUNet_results"],
                              n_proc_da=0 if small and "nnUNet_n_proc_DA" not in os.environ else None,
                              n_proc=1 if small and "nnUNet_def_n_proc" not in os.environ else None)


def _device(device: str) -> str:
    """`auto` -> cuda, mps or cpu; printed once."""
    from mrgen_nnunet.environment import resolve_device

    device = resolve_device(device)
    typer.echo(f"device: {device}")
    return device


@app.command("plan")
def plan(dataset: int = DATASET, configuration: list[str] = typer.Option(["2d"], "--configuration", "-c")) -> None:
    """nnUNetv2_plan_and_preprocess -d DATASET -c ... --verify_dataset_integrity."""
    from mrgen_nnunet.trainers.nnunet_run import plan_and_preprocess

    typer.echo(f"preprocessed: {plan_and_preprocess(dataset, _env(), tuple(configuration))}")


@app.command("train")
def train(dataset: int = DATASET, configuration: str = CONFIGURATION, fold: str = FOLD, trainer: str = TRAINER,
          device: str = DEVICE) -> None:
    """nnUNetv2_train DATASET CONFIGURATION FOLD -tr TRAINER -device DEVICE."""
    from mrgen_nnunet.trainers.nnunet_run import train as run_train

    typer.echo(f"model: {run_train(dataset, trainer, fold, _env(), configuration, _device(device))}")


@app.command("predict")
def predict(dataset: int = DATASET, input_dir: Path = typer.Option(..., "--input", "-i", help="CASE_0000.nii.gz folder"),
            output_dir: Path = typer.Option(..., "--output", "-o", help="output folder"),
            configuration: str = CONFIGURATION, fold: str = FOLD, trainer: str = TRAINER,
            device: str = DEVICE) -> None:
    """nnUNetv2_predict -i IN -o OUT -d DATASET -c CONFIGURATION -f FOLD -tr TRAINER -device DEVICE."""
    from mrgen_nnunet.trainers.nnunet_run import predict as run_predict

    out = run_predict(dataset, input_dir, output_dir, trainer, _env(), fold, configuration, _device(device))
    typer.echo(f"predictions: {out}")
