"""Randomised-contrast baselines written as fixed copies: the cheap alternatives a synthetic dataset must beat.

(a) `labelmap` — SynthSeg / TorchIO `RandomLabelsToImage` style (`augmentation.appearance.label_map_image`).
(b) `remap` — GIN / BigAug style random non-monotonic curve plus gamma (`augmentation.appearance.intensity_remap`).

`augment_slice` returns (H, W) float32 in [0, 1000] (the raw scale of our MRI; nnU-Net z-scores per image anyway).
`augment_slice_dataset` writes several such copies of every case of a slice dataset as a new slice dataset (labels
unchanged, patient ids kept so splits still group by patient). The on-the-fly version of the same randomisation
is the augmented trainer (trainers/augmented_trainer.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrgen_nnunet.augmentation.appearance import intensity_remap, label_map_image

STYLES = ("labelmap", "remap")


def augment_slice(style: str, image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One randomised copy of a slice: (H, W) -> (H, W) float32 in [0, 1000]. style in STYLES."""
    unit = label_map_image(label, image, rng) if style == "labelmap" else intensity_remap(image, rng)
    return unit * np.float32(1000.0)


def augment_slice_dataset(
    source: Path,
    out_raw: Path,
    dataset_id: int,
    name: str,
    style: str,
    copies: int,
    seed: int,
    force: bool = False,
) -> Path:
    """Write `copies` randomised copies of every training case of the slice dataset folder `source`.

    New case ids `"{case}_{style}{j}"`, labels copied unchanged, `mrgen.patients` kept (source patient ids),
    every case listed in `mrgen.synthetic_cases` (not a real acquisition: validation skips it). Returns the new dataset folder.
    """
    from mrgen_nnunet.data.io import read_image
    from mrgen_nnunet.data.nnunet_raw import list_cases, read_dataset_json
    from mrgen_nnunet.data.slice_datasets import SliceCase, write_slice_dataset

    meta = read_dataset_json(source)
    patients = meta["mrgen"]["patients"]
    rng = np.random.default_rng(seed)

    def cases():
        for case in list_cases(source):
            image, geometry = read_image(source / "imagesTr" / f"{case}_0000.nii.gz")
            label, _ = read_image(source / "labelsTr" / f"{case}.nii.gz")
            for j in range(copies):
                yield SliceCase(f"{case}_{style}{j}", patients[case], augment_slice(style, image, label, rng),
                                label, geometry)

    return write_slice_dataset(out_raw, dataset_id, name, cases(), meta, synthetic=True, force=force)
