"""`mrgen-nnunet trainer-path` (not implemented yet)."""

from mrgen_nnunet.errors import NotReadyError


def trainer_path() -> None:
    """Print the folder to put in nnUNet_extTrainer (not implemented yet)."""
    raise NotReadyError("'trainer-path' is not implemented yet")
