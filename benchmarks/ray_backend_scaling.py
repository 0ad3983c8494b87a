"""`synthesize --backend ray` with 1 vs 2 CPU actors on a local Ray instance: wall time and scaling efficiency.

A tiny generator (trained 2 steps per stage at 32 px, the synthesis tests' recipe) turns the masks of the tests'
synthetic source dataset into a dataset with the `none` filter, `--repeats` times per worker count (interleaved).
Wall time covers the whole call (driver validation, actor start-up and model loading, generation, assembly).
Efficiency = t(1) / (2 * t(2)). Generation seconds (summed over masks, from the summary) show how much of the
wall time is fixed start-up and assembly.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ray_backend_scaling.py --patients 8 --steps 20 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--machine", default="2-core shared CPU dev machine, local Ray (num_cpus=2), 1 CPU per actor",
                    help="description written into the result file")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "ray_backend_scaling.json")
    args = ap.parse_args()
    import ray

    sys.path.insert(0, str(HERE.parent / "tests" / "synthesis"))
    from synthesis_helpers import make_index, make_source_dataset

    from mrgen_nnunet.generator.train import TrainOptions, train_generator
    from mrgen_nnunet.synthesis.ray_backend import synthesize_ray
    from mrgen_nnunet.synthesis.run import SynthesisOptions

    root = Path(tempfile.mkdtemp(prefix="ray_scaling_"))
    train_generator(make_index(root), root / "gen", preset="tiny", target_modality="LGE", steps=2, resolution=32,
                    options=TrainOptions(batch_size=2, quiet=True, seed=0))
    make_source_dataset(root / "src", n_patients=args.patients, slices=4)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    times: dict[int, list[float]] = {1: [], 2: []}
    work: dict[int, list[float]] = {1: [], 2: []}  # generation seconds summed over masks (all actors)
    masks = candidates = 0
    for r in range(args.repeats):
        for workers in (1, 2):
            raw = root / f"raw_{workers}_{r}"
            o = SynthesisOptions(target="LGE", source=str(root / "src" / "Dataset101_SRC"), generator=str(root / "gen"),
                                 out_raw=str(raw), out_dataset=501, name="SYN", samples_per_mask=2, max_tries=2,
                                 batch_size=2, steps=args.steps, filter="none", progress=False)
            t0 = time.perf_counter()
            summary = synthesize_ray(o, workers=workers, units_per_worker=4)
            times[workers].append(time.perf_counter() - t0)
            work[workers].append(summary.seconds)
            masks, candidates = summary.masks, summary.candidates
            print(json.dumps({"workers": workers, "repeat": r, "seconds": round(times[workers][-1], 2),
                              "generation_seconds": round(summary.seconds, 2)}), flush=True)
    ray.shutdown()
    t1, t2 = statistics.median(times[1]), statistics.median(times[2])
    result = {"benchmark": "ray_backend_scaling", "date": time.strftime("%Y-%m-%d"),
              "machine": args.machine,
              "generator": "tiny, 32 px", "masks": masks, "candidates": candidates, "steps": args.steps,
              "seconds_runs": {str(k): [round(v, 2) for v in vs] for k, vs in times.items()},
              "seconds_median": {"1": round(t1, 2), "2": round(t2, 2)},
              # the rest of the wall time is Ray/actor start-up, model loading and assembly: fixed per call
              "generation_seconds_median": {str(k): round(statistics.median(v), 2) for k, v in work.items()},
              "speedup": round(t1 / t2, 3), "scaling_efficiency": round(t1 / (2 * t2), 3)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
