"""Contact sheet: one row per source mask — source image | mask | its candidates, each framed green (accepted) or
red (rejected) with its scores underneath — as deterministic PNGs (PIL).

Every tile is TILE×TILE whatever the model resolution (64-512 px), so the text stays legible; a row has a title
line (case, how many candidates were accepted) and a caption of at most 3 lines under each tile.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mrgen_nnunet.data.io import write_bytes_atomic
from mrgen_nnunet.filtering.selection import CandidateScores

TILE, GAP, BORDER, FONT_SIZE, LINE = 128, 6, 4, 12, 15
CAPTION_LINES = 3
BACKGROUND, TEXT = (24, 24, 24), (235, 235, 235)
ACCEPTED, REJECTED = (40, 200, 70), (220, 50, 50)
PALETTE = np.array([[0, 0, 0], [230, 60, 60], [60, 200, 60], [60, 120, 240], [240, 200, 40], [200, 60, 200],
                    [60, 220, 220], [255, 255, 255]], np.uint8)


@dataclass
class Candidate:
    """One generated image and the filter's verdict. image (N, N) in [-1, 1]; prediction (N, N) labels or None."""

    image: np.ndarray
    prediction: np.ndarray | None
    accepted: bool
    caption: list[str]


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default(size=FONT_SIZE)


def _grey(x: np.ndarray) -> Image.Image:
    """(N, N) float in [-1, 1] -> TILE×TILE greyscale tile."""
    u8 = np.rint((np.clip(x, -1, 1) + 1) * 127.5).astype(np.uint8)
    return Image.fromarray(u8).convert("RGB").resize((TILE, TILE), Image.NEAREST)


def _labels(m: np.ndarray) -> Image.Image:
    """(N, N) integer label map -> TILE×TILE colour tile."""
    return Image.fromarray(PALETTE[np.asarray(m) % len(PALETTE)]).resize((TILE, TILE), Image.NEAREST)


def _with_outline(image: np.ndarray, prediction: np.ndarray | None) -> Image.Image:
    """The candidate with the filter's segmentation drawn as label-coloured outlines (label != a 4-neighbour),
    found at tile resolution so they are 2 px wide whatever N."""
    tile = _grey(image)
    if prediction is None:
        return tile
    p = np.asarray(Image.fromarray(np.asarray(prediction, np.uint8)).resize((TILE, TILE), Image.NEAREST))
    edge = np.zeros(p.shape, bool)
    edge[1:] |= p[1:] != p[:-1]
    edge[:-1] |= p[1:] != p[:-1]
    edge[:, 1:] |= p[:, 1:] != p[:, :-1]
    edge[:, :-1] |= p[:, 1:] != p[:, :-1]
    edge &= p > 0
    tile.paste(Image.fromarray(PALETTE[p % len(PALETTE)]), (0, 0), Image.fromarray((edge * 255).astype(np.uint8)))
    return tile


def _fit(draw: ImageDraw.ImageDraw, text: str, width: int, font) -> str:
    """`text`, cut with '…' until it fits `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def caption(try_index: int, scores: CandidateScores, accepted: bool, filtered: bool) -> list[str]:
    """At most CAPTION_LINES lines: verdict, mean IoU/confidence, the worst organ or what should not be there."""
    if not filtered:
        return [f"try {try_index}", "kept (no filter)" if accepted else "not needed"]
    lines = [f"try {try_index} {'accepted' if accepted else 'rejected'}"]
    if scores.organs:
        iou = {k: v.iou for k, v in scores.organs.items()}
        conf = [v.conf for v in scores.organs.values()]
        worst = min(iou, key=iou.get)
        lines += [f"IoU {np.mean(list(iou.values())):.2f} conf {np.mean(conf):.2f}", f"min {iou[worst]:.2f} {worst}"]
    else:
        lines.append("no organ scored")
    if scores.unrequested:
        lines[-1] = "extra: " + ", ".join(sorted(scores.unrequested))
    return lines[:CAPTION_LINES]


def render_row(source: np.ndarray, mask: np.ndarray, candidates: list[Candidate], title: str) -> Image.Image:
    """source (N, N) in [-1, 1], mask (N, N) labels, candidates in display order -> one RGB row image."""
    font = _font()
    columns = 2 + len(candidates)
    cell = TILE + 2 * BORDER
    top, bottom = LINE + 4, 4 + CAPTION_LINES * LINE
    row = Image.new("RGB", (GAP + columns * (cell + GAP), top + cell + bottom), BACKGROUND)
    draw = ImageDraw.Draw(row)
    draw.text((GAP, 2), _fit(draw, title, row.width - 2 * GAP, font), fill=TEXT, font=font)
    tiles = [(_grey(source), None, ["source"]), (_labels(mask), None, ["mask (condition)"])]
    tiles += [(_with_outline(c.image, c.prediction), ACCEPTED if c.accepted else REJECTED, c.caption)
              for c in candidates]
    for i, (tile, frame, lines) in enumerate(tiles):
        x = GAP + i * (cell + GAP)
        if frame is not None:
            draw.rectangle((x, top, x + cell - 1, top + cell - 1), fill=frame)
        row.paste(tile, (x + BORDER, top + BORDER))
        for j, line in enumerate(lines[:CAPTION_LINES]):
            draw.text((x, top + cell + 2 + j * LINE), _fit(draw, line, cell, font), fill=TEXT, font=font)
    return row


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def stack_rows(row_files: list[Path], out: Path) -> Path | None:
    """Stack saved row PNGs top to bottom, left-aligned, into `out` (atomically). None when there are no rows."""
    rows = [Image.open(p).convert("RGB") for p in row_files]
    if not rows:
        return None
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), BACKGROUND)
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    return write_bytes_atomic(png_bytes(sheet), out)

