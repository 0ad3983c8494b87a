"""Quality parity of the synthesis profiles: nnU-Net Dice on real held-out target volumes when the synthetic
data come from the `fast` profile vs the `reference` profile (MRGen's sampler settings), everything else equal.

Runs the two benchmark configs (default: configs/mscmrseg_cpu_parity_{fast,reference}.toml — same trained
generator, same source masks, same seeds, row 'synthetic + source', same nnU-Net plan and schedule) as two
processes side by side with one torch thread each (a finished config resumes instantly), then compares:
- mean and per-structure Dice per profile (mean over seeds) and the difference fast - reference in Dice points;
- synthesis seconds and slices/s per profile (from each synthetic dataset's summary.json);
- image agreement: a sample of the same source mask and seed from both profiles starts from the same noise, so
  their PSNR says how close the two samplers' outputs are, against the PSNR between two seeds of one profile (what
  "different sample" means).

    .venv/bin/python benchmarks/profile_parity.py        # ~1 h on the 2-core CPU dev machine

Writes benchmarks/results/profile_parity.{json,md,png} (the PNG: reference, fast and their difference for the same noise).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from datetime import date
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PROFILES = ("fast", "reference")


def _run_benchmarks(configs: dict[str, Path]) -> None:
    """Both configs at once, one process and one torch thread each (a 2-core machine runs them side by side)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = {p: subprocess.Popen([sys.executable, "-m", "mrgen_nnunet", "benchmark", str(c)], env=env)
             for p, c in configs.items()}
    failed = [p for p, proc in procs.items() if proc.wait() != 0]
    if failed:
        sys.exit(f"profile_parity: the benchmark of {failed} failed (see its output above)")


def _scaled(reference: np.ndarray, *images: np.ndarray) -> list[np.ndarray]:
    """`images` mapped to [-1, 1] by the reference image's min and range (the same map for all of them)."""
    lo, span = float(reference.min()), float(np.ptp(reference)) or 1.0
    return [(2 * (x.astype(np.float32) - lo) / span - 1).astype(np.float32) for x in images]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of b against a, data range = a's range (the project's reconstruction metric)."""
    from mrgen_nnunet.evaluation.generator_metrics import reconstruction_metrics

    a1, b1 = _scaled(a, a, b)
    return reconstruction_metrics(a1[None], b1[None])["psnr"]


def _images(dataset: Path) -> dict[str, np.ndarray]:
    from mrgen_nnunet.data.io import read_image

    return {p.name[: -len("_0000.nii.gz")]: read_image(p)[0] for p in sorted((dataset / "imagesTr").iterdir())}


def _median_psnr(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> tuple[float, int]:
    """Median PSNR over the cases both datasets have (case ids name source mask and try, not the seed)."""
    common = sorted(set(a) & set(b))
    return statistics.median(_psnr(a[c], b[c]) for c in common), len(common)


def _sheet(reference: dict[str, np.ndarray], fast: dict[str, np.ndarray], path: Path, columns: int = 6) -> None:
    """PNG: rows reference | fast | |difference| for `columns` cases (evenly spread), each scaled to the reference
    image's range."""
    from mrgen_nnunet.evaluation.generator_metrics import plot_rows

    common = sorted(set(reference) & set(fast))
    picked = [common[i] for i in np.linspace(0, len(common) - 1, min(columns, len(common))).astype(int)]
    pairs = [_scaled(reference[c], reference[c], fast[c]) for c in picked]
    plot_rows({"reference": [a for a, _ in pairs], "fast (same noise)": [b for _, b in pairs],
               "|difference|": [np.abs(a - b) - 1 for a, b in pairs]}, path, columns=columns)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for p in PROFILES:
        ap.add_argument(f"--{p}", type=Path, default=HERE / "configs" / f"mscmrseg_cpu_parity_{p}.toml",
                        help=f"benchmark config of the '{p}' half")
    ap.add_argument("--machine", default="2-core shared CPU dev machine, no GPU, 1 torch thread per benchmark")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "profile_parity")
    args = ap.parse_args()

    from mrgen_nnunet.benchmark.config import load_config
    from mrgen_nnunet.data.nnunet_raw import find_dataset

    configs = {p: getattr(args, p) for p in PROFILES}
    cfgs = {p: load_config(c) for p, c in configs.items()}
    for p, cfg in cfgs.items():
        if cfg.profile != p:
            sys.exit(f"profile_parity: {configs[p]} says profile = {cfg.profile!r}, expected {p!r}")
    _run_benchmarks(configs)

    result = {"benchmark": "profile_parity", "date": str(date.today()), "machine": args.machine,
              "configs": {p: str(c.relative_to(HERE.parent)) for p, c in configs.items()}, "profiles": {}}
    images = {}
    for p, cfg in cfgs.items():
        runs = json.loads((cfg.out / "results" / "results.json").read_text(encoding="utf-8"))["runs"]
        synth = []
        for seed in cfg.seeds:
            ids = json.loads((cfg.out / "ledger.json").read_text(encoding="utf-8"))
            dataset = find_dataset(cfg.out / "nnUNet_raw", ids[f"part:synthetic:seed{seed}"]["id"])
            s = json.loads((dataset / "summary.json").read_text(encoding="utf-8"))
            synth.append({"seed": seed, "seconds": s["seconds"], "slices_per_second": s["slices_per_second"],
                          "accepted": s["accepted"]})
            images[(p, seed)] = _images(dataset)
        settings = {k: s["settings"][k] for k in ("scheduler", "steps", "guidance", "masks_per_batch", "batch_size")}
        structures = list(runs[0]["dice"])
        result["profiles"][p] = {
            "settings": settings, "synthesis": synth,
            "runs": [{"seed": r["seed"], "mean_dice": r["mean_dice"], "dice": r["dice"]} for r in runs],
            "mean_dice": statistics.mean(r["mean_dice"] for r in runs),
            "sd_mean_dice": statistics.stdev(r["mean_dice"] for r in runs) if len(runs) > 1 else None,
            "dice": {s: statistics.mean(r["dice"][s] for r in runs) for s in structures}}
    fast, ref = result["profiles"]["fast"], result["profiles"]["reference"]
    result["difference_points"] = round(100 * (fast["mean_dice"] - ref["mean_dice"]), 2)
    result["within_2_points"] = abs(result["difference_points"]) <= 2.0
    if fast["sd_mean_dice"] is not None and ref["sd_mean_dice"] is not None:  # seed noise of the difference
        result["standard_error_points"] = round(100 * (fast["sd_mean_dice"] ** 2 / len(fast["runs"])
                                                       + ref["sd_mean_dice"] ** 2 / len(ref["runs"])) ** 0.5, 2)
    result["synthesis_speedup"] = round(statistics.median(s["slices_per_second"] for s in fast["synthesis"])
                                        / statistics.median(s["slices_per_second"] for s in ref["synthesis"]), 2)
    seeds = cfgs["fast"].seeds
    same_noise = [_median_psnr(images[("reference", s)], images[("fast", s)]) for s in seeds]
    result["psnr_fast_vs_reference_same_noise_db"] = [round(v, 2) for v, _ in same_noise]
    if len(seeds) > 1:
        result["psnr_reference_seed_vs_seed_db"] = round(
            _median_psnr(images[("reference", seeds[0])], images[("reference", seeds[1])])[0], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text(_markdown(result), encoding="utf-8")
    _sheet(images[("reference", seeds[0])], images[("fast", seeds[0])], args.out.with_suffix(".png"))
    print(_markdown(result))


def _markdown(r: dict) -> str:
    structures = list(r["profiles"]["fast"]["dice"])
    head = "| profile | sampler | mean Dice (per seed) | mean Dice ± sd | " + " | ".join(structures) + " | synthesis slices/s |"
    lines = [f"Synthesis profile parity, {r['date']}, {r['machine']}.", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for p, d in r["profiles"].items():
        s = d["settings"]
        per_seed = ", ".join(f"{x['mean_dice']:.3f}" for x in d["runs"])
        rate = statistics.median(x["slices_per_second"] for x in d["synthesis"])
        lines.append(f"| {p} | {s['scheduler']} {s['steps']} steps, {s['masks_per_batch']} mask(s)/call | {per_seed} | "
                     f"{d['mean_dice']:.3f}" + (f" ± {d['sd_mean_dice']:.3f}" if d["sd_mean_dice"] is not None else "")
                     + " | " + " | ".join(f"{d['dice'][k]:.3f}" for k in structures)
                     + f" | {rate:.2f} |")
    se = f", standard error from seed noise {r['standard_error_points']:.1f}" if "standard_error_points" in r else ""
    lines += ["", f"Difference fast - reference: **{r['difference_points']:+.1f} Dice points**{se} "
                  f"(within 2 points: {'yes' if r['within_2_points'] else 'no'}); synthesis speed-up fast/reference "
                  f"{r['synthesis_speedup']}x (no filter, 1 thread).",
              f"Image agreement, median PSNR over cases: fast vs reference from the same noise "
              f"{', '.join(str(v) for v in r['psnr_fast_vs_reference_same_noise_db'])} dB per seed"
              + (f"; reference seed vs seed {r['psnr_reference_seed_vs_seed_db']} dB" if
                 "psnr_reference_seed_vs_seed_db" in r else "") + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
