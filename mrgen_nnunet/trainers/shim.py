"""The folder to put in `nnUNet_extTrainer`: it holds one uniquely named module re-exporting our trainers.

nnU-Net (>= 2.8) imports every module of that folder by its bare name and pops it from sys.modules afterwards, so
the folder must not be the package root (modules would be imported twice); the real classes stay in
`mrgen_nnunet.trainers` and pickle under that name.
"""

from __future__ import annotations

from pathlib import Path


def trainer_path() -> Path:
    """Absolute path of the shim folder (`mrgen_nnunet/trainers/nnunet_ext`) — never inside nnunetv2."""
    return Path(__file__).resolve().parent / "nnunet_ext"
