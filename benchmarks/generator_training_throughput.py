"""Steps/s of each generator training stage (autoencoder, text, mask) of `mrgen_nnunet.generator.train`, with and
without gradient checkpointing and bf16 mixed precision, at several resolutions; peak RSS per configuration.

Every (resolution, stage) runs in a fresh subprocess that calls the real stage function `--repeats` times per
variant, variants interleaved (repeat 1 of each variant, then repeat 2, ...) so machine load hits them alike, each
run into its own generator folder (the text stage reads that folder's VAE, the mask stage its UNet). Peak RSS is
that subprocess's (all variants of the stage; at the tiny preset it is dominated by the libraries). The rate of one run is read from the per-step wall times the training loop logs to
tensorboard: (steps - 1) / (t_last - t_first), i.e. without the first (warm-up) step, data loading, model building
and the final validation grid. Reported: the median over repeats. Data: MS-CMRSeg bSSFP (labelled) + LGE
(unlabelled) patients 1-2 when `--data` exists, else the built-in phantom in the same layout.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/generator_training_throughput.py \
        --resolutions 64 128 --steps 6 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("autoencoder", "text", "mask")
VARIANTS = {  # name -> (gradient_checkpointing, mixed_precision)
    "fp32": (False, "no"),
    "fp32+gc": (True, "no"),
    "bf16": (False, "bf16"),
    "bf16+gc": (True, "bf16"),
}
HERE = Path(__file__).resolve().parent


def step_rate(log_dir: Path, stage: str) -> float:
    """Steps/s from the wall times of the `<stage>/loss` scalars in the tensorboard events under `log_dir`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    events = sorted(acc.Scalars(f"{stage}/loss"), key=lambda e: e.step)
    if len(events) < 2:
        raise RuntimeError(f"need >= 2 logged steps in {log_dir}, found {len(events)}")
    return (len(events) - 1) / (events[-1].wall_time - events[0].wall_time)


def worker(spec: dict) -> dict:
    """Run one stage `repeats` times per variant, interleaved (folders <root>/<variant>/rep<r>); steps/s per run
    {variant: [...]} and this process's peak RSS."""
    import torch
    from accelerate.state import AcceleratorState

    from mrgen_nnunet.generator.train import TrainOptions, train_autoencoder, train_mask, train_text

    torch.set_num_threads(spec["threads"])
    rates = {v: [] for v in spec["variants"]}
    for r in range(spec["repeats"]):
        for variant in spec["variants"]:
            gc, mp = VARIANTS[variant]
            AcceleratorState._reset_state(reset_partial_state=True)  # a process-wide singleton: allow another precision
            out = Path(spec["root"]) / variant / f"rep{r}"
            opts = TrainOptions(steps=spec["steps"], batch_size=spec["batch_size"], seed=r, mixed_precision=mp,
                                gradient_checkpointing=gc, cpu=True, quiet=True)
            args = (spec["index"], out, "tiny", spec["resolution"])
            if spec["stage"] == "autoencoder":
                train_autoencoder(*args, options=opts)
            elif spec["stage"] == "text":
                train_text(*args, options=opts)
            else:
                train_mask(spec["index"], out, "LGE", "tiny", spec["resolution"], options=opts)
            rates[variant].append(step_rate(out / "logs" / spec["stage"], spec["stage"]))
    return {"steps_per_s": rates, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def build_index(data: Path | None, root: Path) -> Path:
    """Index of bSSFP (labelled) + LGE (unlabelled) slices of patients 1-2 (real data, else the phantom)."""
    sys.path.insert(0, str(HERE))
    from generator_mscmrseg import build_index as mscmr_index

    if data is None or not (data / "bSSFP").is_dir():
        from mrgen_nnunet.demo.phantom import PhantomSpec, make_phantom

        data = root / "phantom"
        make_phantom(data, PhantomSpec(n_patients=2, size=128))
    return mscmr_index(data, root / "index.jsonl", (1, 2), "bSSFP", "LGE")


def run(args) -> dict:
    root = Path(tempfile.mkdtemp(prefix="gen_train_tp_", dir=args.workdir))
    index = build_index(args.data, root)
    rows = []
    for res in args.resolutions:
        for stage in STAGES:  # in order: text reads the VAE, mask the UNet of the same rep folder
            spec = {"index": str(index), "root": str(root / f"{res}px"), "stage": stage, "variants": args.variants,
                    "resolution": res, "steps": args.steps, "repeats": args.repeats, "batch_size": args.batch_size,
                    "threads": args.threads}
            proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                                  text=True, check=False)
            if proc.returncode != 0:
                raise SystemExit(f"worker failed ({stage} {res}px):\n{proc.stderr[-3000:]}")
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            for variant in args.variants:
                runs = got["steps_per_s"][variant]
                row = {"resolution": res, "variant": variant, "stage": stage,
                       "steps_per_s_median": round(statistics.median(runs), 3),
                       "steps_per_s_runs": [round(v, 3) for v in runs], "peak_rss_mib": round(got["peak_rss_mib"])}
                rows.append(row)
                print(json.dumps(row), flush=True)
    for row in rows:  # speed relative to fp32 without checkpointing, same stage and resolution
        base = next(r for r in rows if r["resolution"] == row["resolution"] and r["stage"] == row["stage"]
                    and r["variant"] == "fp32")
        row["vs_fp32"] = round(row["steps_per_s_median"] / base["steps_per_s_median"], 3)
    return {"benchmark": "generator_training_throughput", "date": time.strftime("%Y-%m-%d"),
            "machine": f"2-core shared CPU dev machine ({platform.processor() or platform.machine()}), no GPU, "
                       f"torch threads={args.threads}, other jobs running",
            "preset": "tiny", "batch_size": args.batch_size, "steps_per_run": args.steps, "repeats": args.repeats,
            "data": "MS-CMRSeg bSSFP+LGE patients 1-2" if args.data and (args.data / "bSSFP").is_dir() else "phantom",
            "rows": rows}


def to_markdown(res: dict) -> str:
    lines = [f"# Generator training throughput ({res['date']})", "",
             f"{res['machine']}; preset `{res['preset']}`, batch {res['batch_size']}, {res['steps_per_run']} steps "
             f"per run, median of {res['repeats']} interleaved runs (first step excluded); data: {res['data']}. "
             "Peak RSS: the process running all variants of one stage.", "",
             "| res | variant | stage | steps/s | vs fp32 | peak RSS MiB |", "|---|---|---|---|---|---|"]
    for r in res["rows"]:
        lines.append(f"| {r['resolution']} | {r['variant']} | {r['stage']} | {r['steps_per_s_median']} | "
                     f"{r['vs_fp32']} | {r['peak_rss_mib']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, default=HERE.parent.parent / "shared" / "data" / "mscmrseg")
    ap.add_argument("--resolutions", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "generator_training_throughput")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    res = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(to_markdown(res), encoding="utf-8")
    print(to_markdown(res))


if __name__ == "__main__":
    main()
