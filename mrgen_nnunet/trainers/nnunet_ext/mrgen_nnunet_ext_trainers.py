"""Shim for nnUNet_extTrainer: re-exports mrgen-nnunet's trainer classes (see mrgen_nnunet/trainers/shim.py)."""

from mrgen_nnunet.trainers.training_length import TRAINERS

globals().update(TRAINERS)
