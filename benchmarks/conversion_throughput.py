"""MRGen-DB-format conversion rate (slices/s) and peak memory on a scaled-up copy of the shared sample.

One conditional dataset of `../shared/data/mrgen_db_sample` (default CHAOS_MRI_T2_SPIR: 68 records, 256x256 PNG
slices, 4 organ masks each) is replicated N times into a temp root (own files per replica, distinct
`volume_nii_path`, so every replica becomes new cases). Each (N, workers) conversion runs
`convert_mrgen_db(..., workers=W)` in a fresh subprocess, `--repeats` times, interleaved; reported: median
slices/s, the subprocess's peak RSS and its Python-heap peak (tracemalloc, a separate run: it slows the code).
Flat memory means peak RSS / heap do not grow with N.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/conversion_throughput.py --copies 1 4 16 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def replicate(sample: Path, subset: str, copies: int, root: Path) -> int:
    """`root` = an MRGen-DB tree with `copies` replicas of `subset`'s `_all.json` records; returns the record count."""
    records = json.loads((sample / "conditional_dataset" / f"{subset}_all.json").read_text(encoding="utf-8"))
    out = []
    for c in range(copies):
        for r in records:
            r = dict(r)
            for key in [k for k in r if k == "image_path" or re.fullmatch(r"mask\d+_path", k)]:
                src = (sample / r[key]).resolve()
                rel = Path("conditional_dataset") / subset / f"rep{c:03d}" / src.relative_to(
                    (sample / "conditional_dataset" / subset).resolve())
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, root / rel)
                r[key] = rel.as_posix()
            r["volume_nii_path"] = f"rep{c:03d}_{r['volume_nii_path']}"
            out.append(r)
    (root / "conditional_dataset" / f"{subset}_all.json").write_text(json.dumps(out), encoding="utf-8")
    return len(out)


def worker(spec: dict) -> dict:
    """One conversion; wall seconds, slices written, peak RSS (MiB) and, with `trace`, the Python heap peak (MiB)."""
    import resource
    import tracemalloc

    from mrgen_nnunet.dataset_converters.mrgen_db import convert_mrgen_db

    if spec["trace"]:
        tracemalloc.start()
    t0 = time.perf_counter()
    out = convert_mrgen_db(spec["src"], spec["out"], 500, subset=spec["subset"], workers=spec["workers"])
    seconds = time.perf_counter() - t0
    heap = tracemalloc.get_traced_memory()[1] / 2**20 if spec["trace"] else None
    slices = len(list((out / "labelsTr").glob("*.nii.gz")))
    return {"seconds": seconds, "slices": slices, "heap_peak_mib": heap,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_rss_worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def convert_once(src: Path, work: Path, subset: str, workers: int, trace: bool) -> dict:
    out = work / "raw"
    shutil.rmtree(out, ignore_errors=True)
    spec = {"src": str(src), "out": str(out), "subset": subset, "workers": workers, "trace": trace}
    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"conversion failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="conv_tp_", dir=args.workdir))
    rows = []
    for n in args.copies:
        src = work / f"x{n}"
        records = replicate(args.sample, args.subset, n, src)
        runs = {w: [] for w in args.workers}
        for _ in range(args.repeats):  # interleaved so machine load hits every worker count alike
            for w in args.workers:
                runs[w].append(convert_once(src, work, args.subset, w, trace=False))
        heap = convert_once(src, work, args.subset, 1, trace=True)["heap_peak_mib"]
        for w in args.workers:
            rates = [r["slices"] / r["seconds"] for r in runs[w]]
            row = {"copies": n, "records": records, "slices": runs[w][0]["slices"], "workers": w,
                   "slices_per_s_median": round(statistics.median(rates), 2),
                   "slices_per_s_runs": [round(v, 2) for v in rates],
                   "peak_rss_mib": round(max(r["peak_rss_mib"] for r in runs[w])),
                   "peak_rss_worker_mib": round(max(r["peak_rss_worker_mib"] for r in runs[w])),
                   "heap_peak_mib_1_worker": round(heap, 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        shutil.rmtree(src)
    for row in rows:
        one = next(r for r in rows if r["copies"] == row["copies"] and r["workers"] == 1)
        row["speedup_vs_1_worker"] = round(row["slices_per_s_median"] / one["slices_per_s_median"], 3)
    shutil.rmtree(work, ignore_errors=True)
    return {"benchmark": "conversion_throughput", "date": time.strftime("%Y-%m-%d"),
            "machine": f"{args.machine} ({platform.machine()})",
            "subset": args.subset, "repeats": args.repeats, "rows": rows}


def to_markdown(res: dict) -> str:
    lines = [f"# MRGen-DB conversion throughput ({res['date']})", "",
             f"{res['machine']}; subset `{res['subset']}` replicated N times; median of {res['repeats']} runs; "
             "slices/s over the whole call (includes imports of the pool workers and dataset.json); peak RSS of the "
             "converting process and of its largest pool worker; Python heap peak via tracemalloc (1 worker, "
             "separate run).", "",
             "| copies N | slices | workers | slices/s | speedup | peak RSS MiB | pool worker RSS MiB | heap peak MiB |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['copies']} | {r['slices']} | {r['workers']} | {r['slices_per_s_median']} | "
                     f"{r['speedup_vs_1_worker']} | {r['peak_rss_mib']} | {r['peak_rss_worker_mib'] if r['workers'] > 1 else '-'} | "
                     f"{r['heap_peak_mib_1_worker']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--sample", type=Path, default=HERE.parent.parent / "shared" / "data" / "mrgen_db_sample")
    ap.add_argument("--subset", default="CHAOS_MRI_T2_SPIR")
    ap.add_argument("--copies", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--machine", default="2-core shared CPU dev machine", help="written into the result files")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "conversion_throughput")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    if not (args.sample / "conditional_dataset").is_dir():
        raise SystemExit(f"no MRGen-DB sample at {args.sample} (see ../shared/data/README.md); pass --sample")
    res = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(to_markdown(res), encoding="utf-8")
    print(to_markdown(res))


if __name__ == "__main__":
    main()
