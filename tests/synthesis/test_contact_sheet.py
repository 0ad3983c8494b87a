"""The contact sheet: source | mask | candidates framed accepted/rejected with scores, no empty column, text that fits."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from synthesis_helpers import StandInPipeline

from mrgen_nnunet.filtering.backends import NoFilter
from mrgen_nnunet.filtering.selection import CandidateScores, OrganScore
from mrgen_nnunet.synthesis import contact_sheet as cs
from mrgen_nnunet.synthesis.run import SynthesisOptions, synthesize

CELL = cs.TILE + 2 * cs.BORDER


def _disc(n: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:n, :n]
    mask = (np.hypot(yy - n / 2, xx - n / 2) < n / 4).astype(np.uint8)
    return mask * 1.2 - 0.6, mask


def _column(row: Image.Image, i: int) -> np.ndarray:
    x = cs.GAP + i * (CELL + cs.GAP)
    return np.asarray(row)[:, x:x + CELL]


def test_row_frames_verdicts_and_is_the_same_size_at_64_and_512_px():
    rows = []
    for n in (64, 512):
        image, mask = _disc(n)
        scores = CandidateScores({"myocardium": OrganScore(0.9, 0.95), "left ventricle": OrganScore(0.6, 0.7)},
                                 {"liver": 0.02}, prediction=mask)
        candidates = [cs.Candidate(image, mask, True, cs.caption(0, scores, True, True)),
                      cs.Candidate(image, None, False, cs.caption(1, scores, False, True))]
        rows.append(cs.render_row(image, mask, candidates, f"case {n}: 1 of 2 candidates accepted"))
    assert rows[0].size == rows[1].size == (cs.GAP + 4 * (CELL + cs.GAP), cs.LINE + 4 + CELL + 4 + 3 * cs.LINE)
    top = cs.LINE + 4
    for row in rows:
        assert tuple(_column(row, 2)[top + 1, 1]) == cs.ACCEPTED and tuple(_column(row, 3)[top + 1, 1]) == cs.REJECTED
        for i in range(4):  # every column holds a tile: no dead grey column
            assert (_column(row, i)[top + cs.BORDER:top + cs.BORDER + cs.TILE] != cs.BACKGROUND).any(axis=-1).mean() > 0.5
        # the filter's segmentation is outlined on the accepted candidate only (red = myocardium label 1)
        assert (_column(row, 2)[top:top + CELL, cs.BORDER:-cs.BORDER] == cs.PALETTE[1]).all(axis=-1).sum() > 50
        assert (_column(row, 3)[top:top + CELL, cs.BORDER:-cs.BORDER] == cs.PALETTE[1]).all(axis=-1).sum() == 0


def test_captions_say_verdict_scores_and_fit_under_the_tile():
    scores = CandidateScores({"myocardium": OrganScore(0.9, 0.95), "left ventricle": OrganScore(0.6, 0.75)})
    assert cs.caption(3, scores, False, True) == ["try 3 rejected", "IoU 0.75 conf 0.85", "min 0.60 left ventricle"]
    extra = CandidateScores({"liver": OrganScore(0.8, 0.9)}, {"spleen": 0.1, "left kidney": 0.02})
    assert cs.caption(0, extra, False, True)[-1] == "extra: left kidney, spleen"
    assert cs.caption(1, CandidateScores({}), True, False) == ["try 1", "kept (no filter)"]
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    long = "min 0.12 " + "inferior vena cava and hepatic portal vein"
    fitted = cs._fit(draw, long, CELL, cs._font())
    assert fitted.endswith("…") and long.startswith(fitted[:-1]) and draw.textlength(fitted, font=cs._font()) <= CELL
    assert cs._fit(draw, "try 0 accepted", CELL, cs._font()) == "try 0 accepted"


def test_sheet_of_a_run_has_one_row_per_mask_with_every_candidate(source_raw):
    o = SynthesisOptions(target="LGE", source="101", generator="standin", out_raw=str(source_raw), out_dataset=501,
                         name="SYN", samples_per_mask=2, max_tries=3, batch_size=2, steps=2, filter="none",
                         progress=False)
    summary = synthesize(o, pipeline=StandInPipeline(), filter_backend=NoFilter())
    sheet = Image.open(source_raw / "Dataset501_SYN" / "contact_sheet.png")
    masks = summary.masks - summary.masks_skipped  # 5 masks with foreground, 2 candidates each, all kept
    row_height = cs.LINE + 4 + CELL + 4 + 3 * cs.LINE
    assert sheet.size == (cs.GAP + 4 * (CELL + cs.GAP), masks * row_height)
    frames = np.asarray(sheet.convert("RGB"))[cs.LINE + 5::row_height, cs.GAP + 2 * (CELL + cs.GAP) + 1]
    assert [tuple(f) for f in frames] == [cs.ACCEPTED] * masks
