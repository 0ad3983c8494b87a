"""trainers: nnU-Net trainer variants (mrgen_trainer, augmented_trainer, training_length) and nnU-Net runs.

`trainer_classes()` is the registry (name -> class); it imports nnU-Net, so it is a function, not a module global.
"""


def trainer_classes() -> dict[str, type]:
    """Every trainer class this package offers to nnU-Net, by name (nnUNetTrainerMRGen*, nnUNetTrainerMRGenAug*)."""
    from mrgen_nnunet.trainers.training_length import TRAINERS

    return dict(TRAINERS)
