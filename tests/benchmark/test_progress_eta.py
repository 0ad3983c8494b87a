"""The benchmark's progress lines: trainings found done before leave the count of what is left."""

from __future__ import annotations

import io

from rich.console import Console

from mrgen_nnunet.benchmark.training import Progress


def test_reused_trainings_leave_the_estimate():
    out = io.StringIO()
    progress = Progress(Console(file=out, width=200), total_trainings=4, jobs=1)
    progress.reused("row 'source' seed 0")
    progress.training_finished(60.0, "row 'oracle' seed 0")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("row 'source' seed 0: done before (same settings)")
    assert lines[1].endswith("finished row 'oracle' seed 0 in 1.0 min; 2 training(s) left, about 2 min")
