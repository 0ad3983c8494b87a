"""Synthesis throughput: the `reference` profile (MRGen's settings) vs the `fast` profile, same generator, same
masks, same seeds, both in one run, interleaved repeats; then 1 vs 2 `accelerate launch` workers.

Generator: --generator DIR, or a `tiny` one trained here at 64 px (--train-steps per stage) on MS-CMRSeg patient 1
(bSSFP labelled + LGE unlabelled) from --data, or on the procedural phantom when --data is absent.
Masks: the --masks bSSFP slices of that patient with the most foreground (3 organs each).
Filter: SAM2 tiny, random-initialised (no weights can be downloaded here), so the image-encoder cost — once per
organ in `reference`, once per image in `fast` — is real. A random SAM2's scores mean nothing, so the thresholds are
0: every scored candidate passes. That isolates speed from acceptance: `reference` still makes its 20 candidates
per mask (no early stop), `fast` stops at k=2 — the best case for early stop. With a real filter at acceptance
rate p, `fast` needs about k/p candidates per mask (at most 20); `candidates/s` gives the per-candidate speed-up
that holds whatever p is.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/synthesis_throughput.py --repeats 3 --masks 2

Writes benchmarks/results/synthesis_throughput.{json,md} (medians over repeats, ratio fast/reference).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "mscmrseg"
ZERO = dict(iou=0.0, conf=0.0, mean_iou=0.0, mean_conf=0.0)


class PeakRSS:
    """Peak resident memory (MiB) of this process while the block runs, sampled every 20 ms from /proc."""

    def __enter__(self):
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self):
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._stop.is_set():
            with open("/proc/self/statm") as f:
                self.peak = max(self.peak, int(f.read().split()[1]) * page)
            self._stop.wait(0.02)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.mib = self.peak / 2**20


def build_inputs(data: Path | None, work: Path, n_masks: int, train_steps: int, generator: Path | None):
    """(source index .jsonl with the n_masks largest-foreground bSSFP slices, generator folder, data name)."""
    from mrgen_nnunet.data.records import load_slice, read_index, write_index
    from mrgen_nnunet.dataset_converters.mscmrseg import convert_mscmrseg

    name = "MS-CMRSeg patient 1"
    if data is None or not (data / "bSSFP").is_dir():
        from mrgen_nnunet.demo.phantom import PhantomSpec, make_phantom

        data, name = make_phantom(work / "phantom", PhantomSpec(n_patients=1, n_slices=max(n_masks, 6))), "phantom"
    recs = {}
    for seq, did in (("bSSFP", 101), ("LGE", 102)):
        convert_mscmrseg(data, work / "raw", did, sequence=seq, patients="1", as_slices=True,
                         index=work / f"{seq}.jsonl")
        recs[seq] = read_index(work / f"{seq}.jsonl")
    bssfp = sorted(recs["bSSFP"], key=lambda r: -int((load_slice(r)[1] > 0).sum()))[:n_masks]
    source = write_index(bssfp, work / "source.jsonl")
    if generator is None:
        from mrgen_nnunet.generator.train import TrainOptions, train_generator

        lge = [replace(r, label_file=None) for r in recs["LGE"]]  # the target sequence: images only
        index = write_index(recs["bSSFP"] + lge, work / "train.jsonl")
        generator = train_generator(index, work / "gen", preset="tiny", target_modality="LGE", steps=train_steps,
                                    resolution=64, options=TrainOptions(batch_size=4, quiet=True, seed=0))
    return source, Path(generator), name


def run_profile(profile: str, source: Path, generator: Path, pipe, filt, out_raw: Path, dataset_id: int,
                max_tries: int | None) -> dict:
    from mrgen_nnunet.filtering.selection import Thresholds
    from mrgen_nnunet.synthesis.run import SynthesisOptions, synthesize

    o = SynthesisOptions(target="LGE", source=str(source), generator=str(generator), out_raw=str(out_raw),
                         out_dataset=dataset_id, name=profile, profile=profile, samples_per_mask=2, seed=0,
                         max_tries=max_tries,
                         filter="sam2", thresholds=Thresholds(**ZERO), progress=False)
    with PeakRSS() as mem:
        start = time.perf_counter()
        s = synthesize(o, pipeline=pipe, filter_backend=filt)
        wall = time.perf_counter() - start
    return {"profile": profile, "seconds": wall, "candidates": s.candidates, "accepted": s.accepted,
            "masks": s.masks - s.masks_skipped, "accepted_per_s": s.accepted / wall,
            "candidates_per_s": s.candidates / wall, "acceptance_rate": s.acceptance_rate,
            "peak_rss_mib": mem.mib, "encoder_images": None}


def scaling(source: Path, generator: Path, work: Path, checkpoint: Path, masks_per_batch: int) -> dict:
    """Wall time of `accelerate launch --num_processes N -m mrgen_nnunet synthesize` for N = 1, 2
    (OMP_NUM_THREADS=1 per worker), and whether both give the same accepted cases and bytes."""
    results = {}
    for n in (1, 2):
        raw = work / f"scale{n}"
        # `--cpu` with several processes needs MPI (`--mpirun_hostfile`); `--multi_gpu` starts them with torchrun,
        # which works on a CPU-only machine as well (synthesize never initialises a process group)
        launcher = ["--multi_gpu"] if n > 1 else ["--cpu"]
        cmd = [str(Path(sys.executable).parent / "accelerate"), "launch", "--num_processes", str(n), *launcher,
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "-m", "mrgen_nnunet", "synthesize", "--target", "LGE", "--source", str(source),
               "--generator", str(generator), "--out-raw", str(raw), "--out-dataset", "600", "--name", "scale",
               "--profile", "fast", "--masks-per-batch", str(masks_per_batch), "--sam2-checkpoint", str(checkpoint),
               "--iou", "0", "--conf", "0", "--mean-iou", "0", "--mean-conf", "0"]
        env = dict(os.environ, OMP_NUM_THREADS="1", nnUNet_raw=str(raw))
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results[n] = {"wall_s": time.perf_counter() - start,
                      "summary": json.loads((raw / "Dataset600_scale" / "summary.json").read_text())}
    files = [{p.relative_to(work / f"scale{n}"): p.read_bytes() for p in (work / f"scale{n}").rglob("*.nii.gz")}
             for n in (1, 2)]
    return {"workers_1_s": results[1]["wall_s"], "workers_2_s": results[2]["wall_s"],
            "speedup": results[1]["wall_s"] / results[2]["wall_s"],
            "efficiency": results[1]["wall_s"] / (2 * results[2]["wall_s"]),
            "same_output": files[0] == files[1], "accepted": results[1]["summary"]["accepted"],
            "masks": results[1]["summary"]["masks"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="MS-CMRSeg root (else the phantom)")
    parser.add_argument("--generator", type=Path, default=None, help="generator folder (else train a tiny one)")
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--masks", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tries", type=int, default=None, help="smoke runs only (default: the profiles' 20)")
    parser.add_argument("--scaling-masks", type=int, default=8, help="masks for the 1 vs 2 worker run (0: skip)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "synthesis_throughput")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    import torch

    from mrgen_nnunet.filtering.sam2_filter import SAM2Filter, build_sam2_predictor
    from mrgen_nnunet.generator.pipeline import MRGenPipeline
    from mrgen_nnunet.synthesis.profiles import prepare_pipeline

    work = args.workdir or Path(tempfile.mkdtemp(prefix="synth_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    source, generator, data_name = build_inputs(args.data, work, args.masks, args.train_steps, args.generator)
    pipe = MRGenPipeline.from_pretrained(generator)
    prepare_pipeline(pipe, "cpu", mixed_precision=True, compile=False)  # SDPA; bf16/channels_last are CUDA-only
    torch.manual_seed(0)
    predictor = build_sam2_predictor("tiny", None)
    encoded = []
    forward_image = predictor.model.forward_image
    predictor.model.forward_image = lambda x: (encoded.append(x.shape[0]), forward_image(x))[1]
    filt = SAM2Filter(predictor)

    scale = None
    if args.scaling_masks:  # first: short, and independent of the profile comparison
        ckpt = work / "sam2_random_tiny.pt"
        torch.save({"model": predictor.model.state_dict()}, ckpt)
        scale_source, _, _ = build_inputs(args.data, work / "scale_inputs", args.scaling_masks, 0, generator)
        scale = scaling(scale_source, generator, work, ckpt, masks_per_batch=max(1, args.scaling_masks // 4))
        print(json.dumps(scale), flush=True)

    runs = []
    for r in range(args.repeats):  # interleaved, order alternating, so machine load hits both alike
        for k, profile in enumerate(("reference", "fast") if r % 2 == 0 else ("fast", "reference")):
            encoded.clear()
            res = run_profile(profile, source, generator, pipe, filt, work / f"r{r}{profile}", 700 + 2 * r + k,
                              args.max_tries)
            res["encoder_images"], res["repeat"] = sum(encoded), r
            runs.append(res)
            print(json.dumps(res), flush=True)
            if len({x["profile"] for x in runs}) == 2:  # results so far, rewritten after every run
                write(args, runs, scale, data_name, torch)
    print(args.out.with_suffix(".md").read_text(encoding="utf-8"))


def write(args, runs: list[dict], scale: dict | None, data_name: str, torch) -> None:
    def med(profile, key):
        return statistics.median(x[key] for x in runs if x["profile"] == profile)

    keys = ("accepted_per_s", "candidates_per_s", "acceptance_rate", "peak_rss_mib", "seconds", "candidates",
            "accepted", "encoder_images")
    table = {p: {k: med(p, k) for k in keys} for p in ("reference", "fast")}
    ratio = {k: table["fast"][k] / table["reference"][k] for k in ("accepted_per_s", "candidates_per_s")}
    result = {"date": date.today().isoformat(), "machine": f"2-core CPU dev machine (shared), {platform.machine()}, "
              f"torch {torch.__version__}, torch threads {torch.get_num_threads()}",
              "load_average": os.getloadavg(), "data": data_name, "masks": args.masks,
              "generator": "tiny preset, 64 px" if args.generator is None else str(args.generator),
              "filter": "SAM2 tiny, random-initialised, thresholds 0 (every scored candidate passes)",
              "repeats": min(sum(x["profile"] == p for x in runs) for p in ("reference", "fast")),
              "max_tries": args.max_tries or 20, "median": table, "ratio_fast_over_reference": ratio, "runs": runs,
              "scaling": scale}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    args.out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")


def markdown(r: dict) -> str:
    m = r["median"]
    lines = [f"Synthesis throughput, {r['date']}, {r['machine']}; {r['data']}, {r['masks']} masks, "
             f"{r['generator']}, {r['filter']}, max {r['max_tries']} candidates per mask; medians of {r['repeats']} "
             "interleaved repeats.", "",
             "| profile | accepted slices/s | candidates/s | acceptance | candidates | SAM2 encoder images | "
             "seconds | peak RSS MiB |", "|---|---|---|---|---|---|---|---|"]
    for p in ("reference", "fast"):
        x = m[p]
        lines.append(f"| {p} | {x['accepted_per_s']:.4f} | {x['candidates_per_s']:.3f} | {x['acceptance_rate']:.2f} | "
                     f"{x['candidates']:.0f} | {x['encoder_images']:.0f} | {x['seconds']:.1f} | "
                     f"{x['peak_rss_mib']:.0f} |")
    q = r["ratio_fast_over_reference"]
    lines += ["", f"Ratio fast/reference: accepted slices/s **{q['accepted_per_s']:.1f}x**, "
              f"candidates/s {q['candidates_per_s']:.1f}x."]
    if r["scaling"]:
        s = r["scaling"]
        lines += ["", f"accelerate launch (OMP_NUM_THREADS=1 per worker), fast profile, {s['masks']} masks: 1 worker {s['workers_1_s']:.1f} s, "
                  f"2 workers {s['workers_2_s']:.1f} s (speed-up {s['speedup']:.2f}x, efficiency "
                  f"{s['efficiency']:.0%}); same accepted files: {s['same_output']}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
