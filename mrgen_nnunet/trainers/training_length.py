"""Short-schedule variants of nnUNetTrainerMRGen, named the nnU-Net way.

`nnUNetTrainerMRGen_{E}epochs` keeps nnU-Net's 250 training / 50 validation iterations per epoch;
`nnUNetTrainerMRGen_{E}epochs_{I}it` also sets I training iterations and max(1, I // 5) validation iterations
per epoch (for CPU tests and benchmarks: one 10-iteration epoch of 32² slices takes seconds).
"""

from __future__ import annotations

import torch

from mrgen_nnunet.trainers.mrgen_trainer import nnUNetTrainerMRGen


def _short(epochs: int, iterations: int | None = None) -> type[nnUNetTrainerMRGen]:
    """A subclass of nnUNetTrainerMRGen with `epochs` epochs (and `iterations` per epoch if given)."""

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = torch.device("cuda")):
        nnUNetTrainerMRGen.__init__(self, plans, configuration, fold, dataset_json, device)
        self.num_epochs = epochs
        if iterations is not None:
            self.num_iterations_per_epoch = iterations
            self.num_val_iterations_per_epoch = max(1, iterations // 5)

    name = f"nnUNetTrainerMRGen_{epochs}epochs" + (f"_{iterations}it" if iterations else "")
    return type(name, (nnUNetTrainerMRGen,), {"__init__": __init__, "__module__": __name__, "__qualname__": name})


nnUNetTrainerMRGen_1epochs = _short(1)
nnUNetTrainerMRGen_2epochs = _short(2)
nnUNetTrainerMRGen_5epochs = _short(5)
nnUNetTrainerMRGen_10epochs = _short(10)
nnUNetTrainerMRGen_30epochs = _short(30)
nnUNetTrainerMRGen_100epochs = _short(100)
nnUNetTrainerMRGen_1epochs_10it = _short(1, 10)
nnUNetTrainerMRGen_2epochs_10it = _short(2, 10)
nnUNetTrainerMRGen_5epochs_10it = _short(5, 10)
nnUNetTrainerMRGen_10epochs_10it = _short(10, 10)
nnUNetTrainerMRGen_10epochs_30it = _short(10, 30)
nnUNetTrainerMRGen_5epochs_60it = _short(5, 60)
nnUNetTrainerMRGen_8epochs_60it = _short(8, 60)
nnUNetTrainerMRGen_10epochs_60it = _short(10, 60)
nnUNetTrainerMRGen_30epochs_60it = _short(30, 60)
nnUNetTrainerMRGen_50epochs_60it = _short(50, 60)
nnUNetTrainerMRGen_100epochs_60it = _short(100, 60)

TRAINERS = {cls.__name__: cls for cls in (
    nnUNetTrainerMRGen,
    nnUNetTrainerMRGen_1epochs, nnUNetTrainerMRGen_2epochs, nnUNetTrainerMRGen_5epochs,
    nnUNetTrainerMRGen_10epochs, nnUNetTrainerMRGen_30epochs, nnUNetTrainerMRGen_100epochs,
    nnUNetTrainerMRGen_1epochs_10it, nnUNetTrainerMRGen_2epochs_10it, nnUNetTrainerMRGen_5epochs_10it,
    nnUNetTrainerMRGen_10epochs_10it, nnUNetTrainerMRGen_10epochs_30it,
    nnUNetTrainerMRGen_5epochs_60it, nnUNetTrainerMRGen_8epochs_60it, nnUNetTrainerMRGen_10epochs_60it,
    nnUNetTrainerMRGen_30epochs_60it, nnUNetTrainerMRGen_50epochs_60it, nnUNetTrainerMRGen_100epochs_60it,
)}
