"""Short-schedule variants of the mrgen-nnunet trainers, written the nnU-Net way: one explicit class each.

`..._{E}epochs` keeps nnU-Net's 250 training / 50 validation iterations per epoch; `..._{E}epochs_{I}it` also sets
I training iterations and max(1, I // 5) validation iterations per epoch (for CPU tests and benchmarks: one
10-iteration epoch of 32² slices takes seconds). The schedule is a class attribute read by nnUNetTrainerMRGen.
`TRAINERS` (name -> class) is the registry the nnUNet_extTrainer shim and the nnU-Net filter read: a new variant
is one class here.
"""

from __future__ import annotations

from mrgen_nnunet.trainers.augmented_trainer import (
    nnUNetTrainerMRGenAug,
    nnUNetTrainerMRGenAugCons,
    nnUNetTrainerMRGenAugIPA,
    nnUNetTrainerMRGenAugKeep,
    nnUNetTrainerMRGenAugSLA,
)
from mrgen_nnunet.trainers.mrgen_trainer import nnUNetTrainerMRGen


class nnUNetTrainerMRGen_1epochs(nnUNetTrainerMRGen):
    schedule = (1, None)

class nnUNetTrainerMRGen_2epochs(nnUNetTrainerMRGen):
    schedule = (2, None)

class nnUNetTrainerMRGen_5epochs(nnUNetTrainerMRGen):
    schedule = (5, None)

class nnUNetTrainerMRGen_10epochs(nnUNetTrainerMRGen):
    schedule = (10, None)

class nnUNetTrainerMRGen_30epochs(nnUNetTrainerMRGen):
    schedule = (30, None)

class nnUNetTrainerMRGen_100epochs(nnUNetTrainerMRGen):
    schedule = (100, None)

class nnUNetTrainerMRGen_1epochs_10it(nnUNetTrainerMRGen):
    schedule = (1, 10)

class nnUNetTrainerMRGen_2epochs_10it(nnUNetTrainerMRGen):
    schedule = (2, 10)

class nnUNetTrainerMRGen_5epochs_10it(nnUNetTrainerMRGen):
    schedule = (5, 10)

class nnUNetTrainerMRGen_10epochs_10it(nnUNetTrainerMRGen):
    schedule = (10, 10)

class nnUNetTrainerMRGen_10epochs_30it(nnUNetTrainerMRGen):
    schedule = (10, 30)

class nnUNetTrainerMRGen_5epochs_60it(nnUNetTrainerMRGen):
    schedule = (5, 60)

class nnUNetTrainerMRGen_8epochs_60it(nnUNetTrainerMRGen):
    schedule = (8, 60)

class nnUNetTrainerMRGen_10epochs_60it(nnUNetTrainerMRGen):
    schedule = (10, 60)

class nnUNetTrainerMRGen_30epochs_60it(nnUNetTrainerMRGen):
    schedule = (30, 60)

class nnUNetTrainerMRGen_50epochs_60it(nnUNetTrainerMRGen):
    schedule = (50, 60)

class nnUNetTrainerMRGen_100epochs_60it(nnUNetTrainerMRGen):
    schedule = (100, 60)

class nnUNetTrainerMRGenAug_1epochs_10it(nnUNetTrainerMRGenAug):
    schedule = (1, 10)

class nnUNetTrainerMRGenAug_2epochs_10it(nnUNetTrainerMRGenAug):
    schedule = (2, 10)

class nnUNetTrainerMRGenAug_5epochs_10it(nnUNetTrainerMRGenAug):
    schedule = (5, 10)

class nnUNetTrainerMRGenAug_10epochs_30it(nnUNetTrainerMRGenAug):
    schedule = (10, 30)

class nnUNetTrainerMRGenAug_8epochs_60it(nnUNetTrainerMRGenAug):
    schedule = (8, 60)

class nnUNetTrainerMRGenAug_30epochs_60it(nnUNetTrainerMRGenAug):
    schedule = (30, 60)

class nnUNetTrainerMRGenAug_50epochs_60it(nnUNetTrainerMRGenAug):
    schedule = (50, 60)

class nnUNetTrainerMRGenAug_100epochs_60it(nnUNetTrainerMRGenAug):
    schedule = (100, 60)

class nnUNetTrainerMRGenAugSLA_2epochs_10it(nnUNetTrainerMRGenAugSLA):
    schedule = (2, 10)

class nnUNetTrainerMRGenAugSLA_8epochs_60it(nnUNetTrainerMRGenAugSLA):
    schedule = (8, 60)

class nnUNetTrainerMRGenAugSLA_30epochs_60it(nnUNetTrainerMRGenAugSLA):
    schedule = (30, 60)

class nnUNetTrainerMRGenAugIPA_2epochs_10it(nnUNetTrainerMRGenAugIPA):
    schedule = (2, 10)

class nnUNetTrainerMRGenAugIPA_8epochs_60it(nnUNetTrainerMRGenAugIPA):
    schedule = (8, 60)

class nnUNetTrainerMRGenAugIPA_30epochs_60it(nnUNetTrainerMRGenAugIPA):
    schedule = (30, 60)


class nnUNetTrainerMRGenAugCons_2epochs_10it(nnUNetTrainerMRGenAugCons):
    schedule = (2, 10)


class nnUNetTrainerMRGenAugCons_8epochs_60it(nnUNetTrainerMRGenAugCons):
    schedule = (8, 60)


class nnUNetTrainerMRGenAugCons_30epochs_60it(nnUNetTrainerMRGenAugCons):
    schedule = (30, 60)


class nnUNetTrainerMRGenAugKeep_2epochs_10it(nnUNetTrainerMRGenAugKeep):
    schedule = (2, 10)


class nnUNetTrainerMRGenAugKeep_8epochs_60it(nnUNetTrainerMRGenAugKeep):
    schedule = (8, 60)


class nnUNetTrainerMRGenAugKeep_30epochs_60it(nnUNetTrainerMRGenAugKeep):
    schedule = (30, 60)


class nnUNetTrainerMRGenAug_30epochs(nnUNetTrainerMRGenAug):
    schedule = (30, None)

class nnUNetTrainerMRGenAug_100epochs(nnUNetTrainerMRGenAug):
    schedule = (100, None)


TRAINERS: dict[str, type[nnUNetTrainerMRGen]] = {
    name: cls for name, cls in sorted(globals().items())
    if isinstance(cls, type) and issubclass(cls, nnUNetTrainerMRGen)
}
