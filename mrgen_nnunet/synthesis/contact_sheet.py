"""Contact-sheet rows: source image | mask | synthetic | filter mask | scores, as deterministic PNGs (PIL)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mrgen_nnunet.data.io import atomic_path
from mrgen_nnunet.errors import MRGenError

TILE = 128
PALETTE = np.array([[0, 0, 0], [230, 60, 60], [60, 200, 60], [60, 120, 240], [240, 200, 40], [200, 60, 200],
                    [60, 220, 220], [255, 255, 255]], np.uint8)


def _grey(x: np.ndarray) -> Image.Image:
    """(N, N) float in [-1, 1] -> TILE×TILE greyscale tile."""
    u8 = np.rint((np.clip(x, -1, 1) + 1) * 127.5).astype(np.uint8)
    return Image.fromarray(u8).convert("RGB").resize((TILE, TILE), Image.NEAREST)


def _labels(m: np.ndarray) -> Image.Image:
    """(N, N) integer label map -> TILE×TILE colour tile."""
    return Image.fromarray(PALETTE[np.asarray(m) % len(PALETTE)]).resize((TILE, TILE), Image.NEAREST)


def render_row(source: np.ndarray, mask: np.ndarray, synthetic: np.ndarray, prediction: np.ndarray | None,
               text: str) -> Image.Image:
    """One row of 5 tiles. Images (N, N) in [-1, 1]; mask/prediction (N, N) label maps; text = scores."""
    row = Image.new("RGB", (5 * TILE, TILE), (32, 32, 32))
    row.paste(_grey(source), (0, 0))
    row.paste(_labels(mask), (TILE, 0))
    row.paste(_grey(synthetic), (2 * TILE, 0))
    if prediction is not None:
        row.paste(_labels(prediction), (3 * TILE, 0))
    ImageDraw.Draw(row).multiline_text((4 * TILE + 4, 4), text, fill=(255, 255, 255), spacing=2)
    return row


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def stack_rows(row_files: list[Path], out: Path) -> Path | None:
    """Stack saved row PNGs vertically into `out` (atomically). None when there are no rows."""
    rows = [Image.open(p).convert("RGB") for p in row_files]
    if not rows:
        return None
    sheet = Image.new("RGB", (rows[0].width, sum(r.height for r in rows)))
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    return write_bytes_atomic(png_bytes(sheet), out)


def write_bytes_atomic(data: bytes, path: Path) -> Path:
    """Write bytes atomically (temp + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic_path(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise MRGenError(f"cannot write file: {exc.strerror}", path, "check free disk space and write permission") from None
    return path
