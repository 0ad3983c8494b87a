"""The embedded phantom: MS-CMRSeg layout, geometry, labels, and contrasts that differ between sequences."""

import numpy as np

from mrgen_nnunet.data.io import read_image
from mrgen_nnunet.demo.phantom import SEQUENCES, PhantomSpec, make_phantom


def test_phantom_layout_geometry_and_contrast(tmp_path):
    spec = PhantomSpec(n_patients=2, n_slices=4, size=48)
    root = make_phantom(tmp_path / "ph", spec)
    means = {}
    for seq in SEQUENCES:
        for k in (1, 2):
            image, geom = read_image(root / seq / f"image_{k}.nii.gz")
            label, lgeom = read_image(root / seq / f"label_{k}.nii.gz")
            assert image.shape == label.shape == (4, 48, 48)
            assert geom.spacing == lgeom.spacing == (2.5, 2.5, 10.0)
            assert image.dtype == np.float32 and 0 <= image.min() and 300 < image.max() < 2000
            assert set(np.unique(label)) == {0, 1, 2, 3}  # >= 3 structures, RV present at the base
            assert (label[0] == 3).any() and not (label[-1] == 3).any()  # RV ends before the apex
        means[seq] = [float(image[label == v].mean()) for v in (1, 2)]  # myocardium, LV blood
    # bSSFP: bright blood, dark myocardium; LGE: blood much darker than in bSSFP
    assert means["bSSFP"][1] > 2.5 * means["bSSFP"][0]
    assert means["LGE"][1] < 0.7 * means["bSSFP"][1]


def test_phantom_is_deterministic_and_sequences_are_separate_acquisitions(tmp_path):
    spec = PhantomSpec(n_patients=1, n_slices=3, size=32)
    a = read_image(make_phantom(tmp_path / "a", spec) / "bSSFP" / "label_1.nii.gz")[0]
    b = read_image(make_phantom(tmp_path / "b", spec) / "bSSFP" / "label_1.nii.gz")[0]
    lge = read_image(tmp_path / "a" / "LGE" / "label_1.nii.gz")[0]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, lge)
