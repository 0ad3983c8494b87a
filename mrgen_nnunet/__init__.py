"""mrgen-nnunet: MRGen-style synthesis of an unlabelled MRI sequence for nnU-Net."""

__version__ = "0.1.0"
