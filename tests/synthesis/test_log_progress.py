"""Synthesis progress when stdout is not a terminal (a log file, a cluster job): plain lines with masks done,
accepted candidates, rate and ETA (the same `StepProgress` as generator training)."""

from __future__ import annotations

import re

from synthesis_helpers import StandInPipeline

from mrgen_nnunet import progress
from mrgen_nnunet.filtering.backends import NoFilter
from mrgen_nnunet.synthesis.run import SynthesisOptions, synthesize

LINE = re.compile(r"^synthesize: mask (\d+)/6  accepted (\d+)/(\d+) \(\d+%\)  \d+\.\d\d masks/s  ETA \d+:\d\d$")


def test_synthesis_prints_plain_progress_lines_when_stdout_is_not_a_tty(source_raw, capsys, monkeypatch):
    monkeypatch.setattr(progress, "EVERY_S", 0.0)  # a line per finished chunk instead of every 30 s
    o = SynthesisOptions(target="LGE", source="101", generator="standin", out_raw=str(source_raw), out_dataset=501,
                         name="SYN", samples_per_mask=2, max_tries=3, batch_size=2, masks_per_batch=2, steps=2,
                         filter="none", overlap=False)  # progress=True (the default)
    summary = synthesize(o, pipeline=StandInPipeline(), filter_backend=NoFilter())
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("synthesize")]
    matches = [LINE.match(ln) for ln in lines]
    assert all(matches), lines  # a rich bar's frame would not match
    assert [int(m.group(1)) for m in matches] == [2, 4, 6]  # one line per chunk of 2 masks
    assert (int(matches[-1].group(2)), int(matches[-1].group(3))) == (summary.accepted, summary.candidates) == (10, 10)
