"""`mrgen-nnunet benchmark CONFIG`: parse, then call `benchmark.protocol.run_benchmark`."""

from __future__ import annotations

from pathlib import Path

import typer


def benchmark(
    config: Path = typer.Argument(..., help="Benchmark TOML, e.g. benchmarks/configs/mscmrseg_bssfp_to_lge.toml."),
    rows: str = typer.Option("", "--rows", help="Comma-separated subset of the config's rows, e.g. source,remap."),
    seeds: str = typer.Option("", "--seeds", help="Comma-separated seeds instead of the config's, e.g. 0,1,2."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Jobs side by side, cores/jobs threads each; the generator "
                      "trains in one while rows that need no generator train in the others."),
    report_only: bool = typer.Option(False, "--report-only", help="Only write the results table from the rows "
                                     "finished so far (trains nothing)."),
    force: bool = typer.Option(False, "--force", help="Rebuild outputs whose recorded settings differ from the "
                               "config's (default: refuse)."),
) -> None:
    """Train nnU-Net once per row (source-only, synthetic, mixes, randomised baselines, oracle) and compare."""
    from rich.console import Console

    from mrgen_nnunet.benchmark.config import load_config
    from mrgen_nnunet.benchmark.protocol import run_benchmark
    from mrgen_nnunet.errors import MRGenError

    cfg = load_config(config)
    if rows:
        wanted = [r.strip() for r in rows.split(",") if r.strip()]
        unknown = [r for r in wanted if r not in cfg.rows]
        if unknown:
            raise MRGenError(f"row(s) {unknown} not in the config", "--rows", f"choose from {cfg.rows}")
        cfg.rows = wanted
    if seeds:
        try:
            cfg.seeds = [int(x) for x in seeds.split(",") if x.strip()]
        except ValueError:
            raise MRGenError(f"bad seeds {seeds!r}", "--seeds", "write integers separated by commas, e.g. 0,1,2") from None
        if not cfg.seeds:
            raise MRGenError("no seeds given", "--seeds", "write integers separated by commas, e.g. 0,1,2")
    console = Console()
    if report_only:
        from mrgen_nnunet.benchmark.protocol import report_finished

        paths = report_finished(cfg)
    else:
        _, paths = run_benchmark(cfg, console, jobs=jobs, force=force)
    console.print(paths["markdown"].read_text(encoding="utf-8"))
    console.print(f"results: {paths['markdown']}  {paths['json']}  {paths['plot']}")
