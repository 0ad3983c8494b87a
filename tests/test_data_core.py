"""Data core: geometry-preserving IO, normalisation and its inverse, the index."""

import numpy as np
import pytest

from mrgen_nnunet.data.io import Geometry, extract_slice, read_image, slice_geometry, write_image
from mrgen_nnunet.data.normalize import denormalize_slice, normalize_label, normalize_slice
from mrgen_nnunet.data.records import SliceRecord, load_slice, read_index, write_index
from mrgen_nnunet.errors import MRGenError


def test_write_read_keeps_geometry(tmp_path):
    geom = Geometry((1.25, 1.5, 5.0), (10.0, -3.0, 7.0), tuple(np.eye(3).ravel()))
    vol = np.random.default_rng(0).random((4, 12, 10)).astype(np.float32)
    path = write_image(vol, geom, tmp_path / "v.nii.gz")
    back, g = read_image(path)
    np.testing.assert_array_equal(back, vol)
    assert g == geom
    assert list(tmp_path.iterdir()) == [path]  # no temp file left


def test_slice_geometry_moves_origin_along_z():
    geom = Geometry((1.0, 2.0, 5.0), (0.0, 0.0, 100.0), tuple(np.eye(3).ravel()))
    g2 = slice_geometry(geom, 3)
    assert g2.spacing == (1.0, 2.0) and g2.origin == (0.0, 0.0) and g2.ndim == 2
    assert extract_slice(np.zeros((5, 3, 4)), 2).shape == (3, 4)
    with pytest.raises(MRGenError):
        extract_slice(np.zeros((5, 3, 4)), 5)


@pytest.mark.parametrize("shape", [(40, 40), (48, 30), (30, 52)])
def test_normalisation_inverse_is_exact_at_native_size(shape):
    x = np.random.default_rng(1).random(shape) * 1800.0
    y, info = normalize_slice(x, max(shape))
    assert y.shape == (max(shape),) * 2 and y.min() >= -1 and y.max() <= 1
    np.testing.assert_allclose(denormalize_slice(y, info), x, rtol=0, atol=1e-3 * 1800)


def test_normalisation_resized_round_trip_keeps_grid():
    x = np.random.default_rng(2).random((60, 45)) * 10
    y, info = normalize_slice(x, 32)
    back = denormalize_slice(y, info)
    assert back.shape == x.shape
    assert x.min() - 1e-6 <= back.min() and back.max() <= x.max() + 1e-6
    label = np.zeros((60, 45), np.uint8)
    label[10:30, 5:20] = 2
    assert set(np.unique(normalize_label(label, info))) == {0, 2}


def test_constant_slice_does_not_divide_by_zero():
    y, info = normalize_slice(np.full((8, 8), 5.0), 8)
    assert np.all(y == -1.0)
    assert np.all(denormalize_slice(y, info) == 5.0)


def test_index_round_trip_and_load(tmp_path):
    geom = Geometry((1.0, 1.0, 3.0), (0.0,) * 3, tuple(np.eye(3).ravel()))
    img = np.arange(2 * 6 * 5, dtype=np.float32).reshape(2, 6, 5)
    lab = (img > 30).astype(np.uint8)
    write_image(img, geom, tmp_path / "img.nii.gz")
    write_image(lab, geom, tmp_path / "lab.nii.gz")
    rec = SliceRecord("c1", "p1", 1, "img.nii.gz", "LGE Cardiac MRI", label_file="lab.nii.gz",
                      organs=["myo"], labels={"background": 0, "myo": 1}, spacing=[1.0, 1.0])
    write_index([rec], tmp_path / "index.jsonl")
    (back,) = read_index(tmp_path / "index.jsonl")
    image, label = load_slice(back)
    np.testing.assert_array_equal(image, img[1])
    np.testing.assert_array_equal(label, lab[1])


def test_bad_index_is_one_line_error(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"case_id": "x"}\n')
    with pytest.raises(MRGenError, match="lacks field"):
        read_index(tmp_path / "bad.jsonl")
    with pytest.raises(MRGenError, match="not found"):
        read_index(tmp_path / "missing.jsonl")
