"""SimpleITK image IO that keeps geometry, atomic writes, and axial slice extraction.

Arrays follow SimpleITK's order: a 3D volume is (z, y, x), a 2D slice is (y, x). Geometry tuples follow
SimpleITK's (x, y[, z]) order.
"""

from __future__ import annotations

import contextlib
import gzip
import locale
import math
import os
import struct
import tempfile
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrgen_nnunet.errors import MRGenError


@dataclass(frozen=True)
class Geometry:
    """Physical placement of an image: spacing (mm), origin (mm), direction cosines (row-major)."""

    spacing: tuple[float, ...]
    origin: tuple[float, ...]
    direction: tuple[float, ...]

    @property
    def ndim(self) -> int:
        return len(self.spacing)

    def to_dict(self) -> dict:
        return {"spacing": list(self.spacing), "origin": list(self.origin), "direction": list(self.direction)}

    @classmethod
    def from_dict(cls, d: dict) -> Geometry:
        return cls(tuple(d["spacing"]), tuple(d["origin"]), tuple(d["direction"]))

    @classmethod
    def default(cls, ndim: int, spacing: tuple[float, ...] | None = None) -> Geometry:
        eye = tuple(float(v) for v in np.eye(ndim).ravel())
        return cls(tuple(spacing or (1.0,) * ndim), (0.0,) * ndim, eye)


@contextlib.contextmanager
def keep_locale():
    """Restore the process locale afterwards: GDCM (SimpleITK's DICOM reader, also probed for unknown files)
    sets it to "C", which makes Python's default text encoding ASCII for the rest of the process."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, Geometry]:
    """Read any SimpleITK-readable image. Returns (array (z, y, x) or (y, x), geometry).

    NIfTI files are verified first (`verify_nifti`). RGB(A) images (PNG/JPEG) are converted to grey by averaging
    the colour channels.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.is_file():
        raise MRGenError("image file not found", path, "check the path")
    data = verify_nifti(path) if path.name.endswith((".nii", ".nii.gz")) else None
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK prints e.g. "direction coerced" per file to stderr
    try:
        with keep_locale(), tempfile.TemporaryDirectory() as tmp:
            if data is not None and path.name.endswith(".gz"):  # ITK reads the verified bytes: no second gunzip
                (Path(tmp) / "image.nii").write_bytes(data)
                image = sitk.ReadImage(str(Path(tmp) / "image.nii"))
            else:
                image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
        raise MRGenError(f"cannot read image: {first}", path, "the file is corrupt or truncated; re-export it") from None
    array = sitk.GetArrayFromImage(image)
    if image.GetNumberOfComponentsPerPixel() > 1:
        array = array[..., :3].mean(axis=-1)
    geometry = Geometry(tuple(image.GetSpacing()), tuple(image.GetOrigin()), tuple(image.GetDirection()))
    return array, geometry


_FLOAT_VOXELS = {16: "f4", 64: "f8"}  # NIfTI datatype codes of float32 / float64


def verify_nifti(path: Path) -> bytes:
    """What ITK does not check: a .nii.gz must decompress whole (Python's gzip verifies CRC and length), the voxel
    data must be as long as the header says, and float voxels must be finite. ITK reads a short file as zeros, ignores
    a CRC error and turns NaN/Inf into 0. A file that is not single-file NIfTI-1/2 is left to ITK's reader.
    Returns the (decompressed) file contents."""
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise MRGenError(f"corrupt gzip data: {exc}", path,
                             "the file is truncated or damaged; re-export or re-download it") from None
    header = _nifti_header(data)
    if header is None:
        return data
    offset, shape, bitpix, datatype, endian = header
    count = math.prod(shape)
    needed = offset + count * bitpix // 8
    if len(data) < needed:
        raise MRGenError(f"image data is truncated ({len(data)} of {needed} bytes)", path,
                         "the file is truncated; re-export or re-download it")
    if datatype in _FLOAT_VOXELS:
        voxels = np.frombuffer(data, dtype=endian + _FLOAT_VOXELS[datatype], count=count, offset=offset)
        bad = int(np.count_nonzero(~np.isfinite(voxels)))
        if bad:
            raise MRGenError(f"image has {bad} NaN/Inf voxel(s)", path,
                             "replace them (e.g. with 0 or the minimum) or exclude this file")
    return data


def _nifti_header(data: bytes) -> tuple[int, tuple[int, ...], int, int, str] | None:
    """(voxel offset, shape, bits per voxel, datatype code, byte order) of a single-file NIfTI-1/2, else None."""
    for e in "<>":
        if len(data) >= 348 and struct.unpack(e + "i", data[:4])[0] == 348 and data[344:347] == b"n+1":
            dim = struct.unpack(e + "8h", data[40:56])
            datatype, bitpix = struct.unpack(e + "2h", data[70:74])
            offset = int(struct.unpack(e + "f", data[108:112])[0])
        elif len(data) >= 540 and struct.unpack(e + "i", data[:4])[0] == 540 and data[4:7] == b"n+2":
            datatype, bitpix = struct.unpack(e + "2h", data[12:16])
            dim = struct.unpack(e + "8q", data[16:80])
            offset = struct.unpack(e + "q", data[168:176])[0]
        else:
            continue
        shape = dim[1: dim[0] + 1]
        if not 1 <= dim[0] <= 7 or min(shape) < 1 or bitpix < 1:
            return None
        return offset, shape, bitpix, datatype, e
    return None


def atomic_path(path: Path) -> Path:
    """A hidden temporary sibling of `path` with the same suffixes (SimpleITK picks the format from them)."""
    suffixes = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffixes)] if suffixes else path.name
    return path.with_name(f".{stem}.tmp-{uuid.uuid4().hex[:8]}{suffixes}")


def write_image(array: np.ndarray, geometry: Geometry, path: str | os.PathLike) -> Path:
    """Write `array` ((z, y, x) or (y, x)) with `geometry` atomically (temp file + rename)."""
    import SimpleITK as sitk

    path = Path(path)
    if array.ndim != geometry.ndim:
        raise MRGenError(f"array has {array.ndim} dims but geometry has {geometry.ndim}", path)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing([float(s) for s in geometry.spacing])
    image.SetOrigin([float(o) for o in geometry.origin])
    image.SetDirection([float(d) for d in geometry.direction])
    try:
        return write_atomic(path, lambda tmp: sitk.WriteImage(image, str(tmp), useCompression=True))
    except RuntimeError as exc:
        raise MRGenError(f"cannot write image: {str(exc).strip().splitlines()[-1]}", path,
                         "check free disk space and write permission") from None


def write_atomic(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Write `path` all at once: `write(tmp)` fills a hidden temporary sibling with the same suffixes (formats are
    picked from them), which is then renamed to `path`. The temporary file never stays behind; an OSError becomes
    a one-line MRGenError. Every atomic write of the package (images, text, bytes, figures) goes through here."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise MRGenError(f"cannot write file: {exc.strerror or exc}", path,
                         "check free disk space and write permission") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    """Write a UTF-8 text file atomically (temp file + rename)."""
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> Path:
    """Write bytes atomically (temp file + rename)."""
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_figure(fig, path: str | os.PathLike, **savefig) -> Path:
    """Save a matplotlib figure atomically (format from the suffix; `savefig` passed on, e.g. dpi) and close it."""
    import matplotlib.pyplot as plt

    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, **savefig))
    finally:
        plt.close(fig)


def slice_geometry(volume: Geometry, index: int) -> Geometry:
    """2D geometry of axial slice `index` of a 3D volume: in-plane spacing, the slice's own origin, 2x2 direction."""
    if volume.ndim == 2:
        return volume
    direction = np.asarray(volume.direction, dtype=float).reshape(3, 3)
    origin = np.asarray(volume.origin, dtype=float) + direction @ np.array([0.0, 0.0, index * volume.spacing[2]])
    return Geometry(
        tuple(float(s) for s in volume.spacing[:2]),
        tuple(float(o) for o in origin[:2]),
        tuple(float(d) for d in direction[:2, :2].ravel()),
    )


def extract_slice(volume: np.ndarray, index: int) -> np.ndarray:
    """Axial slice `index` ((y, x)) of a (z, y, x) volume; a 2D array is returned unchanged."""
    if volume.ndim == 2:
        return volume
    if volume.ndim != 3:
        raise MRGenError(f"expected a 2D or 3D image, got {volume.ndim}D")
    if not 0 <= index < volume.shape[0]:
        raise MRGenError(f"slice {index} out of range 0..{volume.shape[0] - 1}")
    return volume[index]
