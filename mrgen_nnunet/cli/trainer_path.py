"""`mrgen-nnunet trainer-path`: print the folder for nnUNet_extTrainer.

    nnUNet_extTrainer=$(mrgen-nnunet trainer-path) nnUNetv2_train 501 2d 0 -tr nnUNetTrainerMRGen -device cpu
"""

import typer


def trainer_path() -> None:
    """Print the folder to put in nnUNet_extTrainer (nnUNetTrainerMRGen and its short variants)."""
    from mrgen_nnunet.trainers.shim import trainer_path as shim_folder

    typer.echo(str(shim_folder()))
