"""`mrgen-nnunet demo`: parse, then call `demo.run.run_demo`."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("mrgen_demo"), "--out", help="Folder for everything the demo writes."),
    data: tuple[str, Path] | None = typer.Option(None, "--data", help="Real data instead of the phantom: "
                                          "LAYOUT DIR, e.g. --data mscmrseg /data/MS-CMRSeg (image_K/label_K NIfTI per sequence)."),
) -> None:
    """Phantom -> convert -> tiny generator -> synthesize -> nnU-Net -> Dice table, on CPU in minutes."""
    import time

    from rich.console import Console

    from mrgen_nnunet.demo.run import run_demo

    console = Console()
    source = None if not data or data[0] is None else (data[0], Path(data[1]))
    console.print("mrgen-nnunet demo: " + ("embedded two-sequence phantom (sequence A = bSSFP-like, labelled; "
                                           "B = LGE-like, images)" if source is None else f"{source[0]} data in "
                                           f"{source[1]}") + "; synthetic filter: none (every sample kept)")
    t = time.perf_counter()
    summary = run_demo(out, source, console=console)
    console.print(summary["report"]["markdown"].read_text(encoding="utf-8"))
    console.print(f"done in {time.perf_counter() - t:.0f} s. Results: {summary['report']['markdown']}, "
                  f"{summary['report']['json']}, plot {summary['report']['plot']}")
    if summary["contact_sheet"] is not None:
        console.print(f"synthetic samples (contact sheet): {summary['contact_sheet']}")
    console.print(f"everything (datasets, models, logs): {summary['config'].out}")
