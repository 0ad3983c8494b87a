"""Progress for long loops that reads well in both places a user watches a run.

On a terminal: a rich bar (description, bar, N/M, loss, time remaining). Elsewhere (a log file, CI, a cluster job's
stdout) the bar would print nothing until its last frame, so instead one plain line every `every_s` seconds and
at the end: `train text: step 120/600  loss 0.0831  1.92 steps/s  ETA 4:10`.
"""

from __future__ import annotations

import sys
import time

EVERY_S = 30.0  # seconds between plain lines


def _clock(seconds: float) -> str:
    """Seconds -> 'H:MM:SS' or 'M:SS'."""
    s = int(round(seconds))
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


class StepProgress:
    """`with StepProgress("train vae", total=600, start=0) as p: p.update(step, loss)` — step in 1..total.

    `quiet` prints nothing; `plain=None` picks lines when stdout is not a TTY; `every_s` (default EVERY_S)
    spaces the lines; the last step always prints. `unit` names what is counted (`step 120/600`, `steps/s`);
    `update(step, note=...)` shows a note (e.g. `accepted 12/30 (40%)`) instead of a loss.
    """

    def __init__(self, description: str, total: int, start: int = 0, quiet: bool = False,
                 plain: bool | None = None, every_s: float | None = None, stream=None, unit: str = "step"):
        self.description, self.total, self.start, self.quiet, self.unit = description, total, start, quiet, unit
        self.stream = stream or sys.stdout
        self.plain = (not self.stream.isatty()) if plain is None else plain
        self.every_s = EVERY_S if every_s is None else every_s
        self._bar = None

    def __enter__(self) -> StepProgress:
        self._t0 = self._last = time.perf_counter()
        if not self.quiet and not self.plain:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[text]}"), TimeRemainingColumn())
            self._bar.__enter__()
            self._task = self._bar.add_task(self.description, total=self.total, completed=self.start, text="")
        return self

    def update(self, step: int, loss: float | None = None, note: str = "") -> None:
        """Record that `step` (1..total) finished with `loss` (or with `note`)."""
        text = "  ".join(t for t in ("" if loss is None else f"loss {loss:.4f}", note) if t)
        if self._bar is not None:
            self._bar.update(self._task, completed=step, text=text)
            return
        now = time.perf_counter()
        if self.quiet or (now - self._last < self.every_s and step < self.total):
            return
        self._last = now
        rate = (step - self.start) / max(now - self._t0, 1e-9)
        eta = _clock((self.total - step) / rate) if rate > 0 else "?"
        parts = (f"{self.unit} {step}/{self.total}", text, f"{rate:.2f} {self.unit}s/s", f"ETA {eta}")
        print(f"{self.description}: " + "  ".join(p for p in parts if p), file=self.stream, flush=True)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
