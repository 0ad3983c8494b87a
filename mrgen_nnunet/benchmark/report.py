"""The benchmark's results table (markdown + JSON) and bar plot.

Input per row and seed: `RowResult` = Dice and HD95 (mm) per structure, each the mean over test volumes, the
per-volume Dice, and wall seconds per stage. Output per row: mean ± sd over seeds (sd only when there is more
than one seed) and the paired difference of mean Dice against the `source` row over (test volume × seed) pairs
with a 95 % bootstrap interval: both rows saw the same volumes with the same seeds, so pairing removes the
volume-to-volume spread that dwarfs the row effect.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mrgen_nnunet.benchmark.rows import ROWS
from mrgen_nnunet.data.io import write_figure, write_text_atomic


@dataclass
class RowResult:
    """One row trained with one seed, evaluated on the test volumes."""

    row: str
    seed: int
    dice: dict[str, float]  # structure -> mean Dice over test volumes, in [0, 1]
    hd95: dict[str, float]  # structure -> mean HD95 over test volumes, mm (nan where undefined)
    train_cases: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    trainer: str = ""
    cases: dict[str, dict[str, float]] = field(default_factory=dict)  # test volume -> structure -> Dice

    @property
    def mean_dice(self) -> float:
        return float(np.mean(list(self.dice.values())))

    def to_dict(self) -> dict:
        return asdict(self) | {"mean_dice": self.mean_dice}

    @classmethod
    def from_dict(cls, d: dict) -> RowResult:
        return cls(d["row"], d["seed"], d["dice"], d["hd95"], d.get("train_cases", 0), d.get("seconds", {}),
                   d.get("trainer", ""), d.get("cases", {}))


def _stat(values: list[float]) -> dict:
    v = np.asarray(values, dtype=float)
    finite = v[np.isfinite(v)]
    mean = float(finite.mean()) if finite.size else float("nan")
    sd = float(finite.std(ddof=1)) if finite.size > 1 else None
    return {"mean": mean, "sd": sd, "n": int(v.size)}


def paired_difference(row: list[RowResult], reference: list[RowResult], n_boot: int = 10000,
                      seed: int = 0) -> dict | None:
    """Mean over (test volume, seed) pairs of row minus reference (mean Dice over structures of one volume), with
    a 95 % percentile bootstrap interval. None when the two rows share no (volume, seed) pair."""
    ref = {(r.seed, c): float(np.nanmean(list(d.values()))) for r in reference for c, d in r.cases.items()}
    diffs = np.array([float(np.nanmean(list(d.values()))) - ref[(r.seed, c)]
                      for r in row for c, d in r.cases.items() if (r.seed, c) in ref])
    if diffs.size == 0:
        return None
    rng = np.random.default_rng(seed)
    boot = diffs[rng.integers(0, diffs.size, (n_boot, diffs.size))].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"mean": float(diffs.mean()), "lo": float(lo), "hi": float(hi), "n": int(diffs.size)}


def summarise(results: list[RowResult]) -> dict:
    """{row: {"dice": {structure: stat}, "hd95": {...}, "mean_dice": stat, "train_cases", "seconds"}}, in row order
    of first appearance; stat = {"mean", "sd" (None for one seed), "n"}."""
    rows: dict[str, list[RowResult]] = {}
    for r in results:
        rows.setdefault(r.row, []).append(r)
    out = {}
    for row, rs in rows.items():
        structures = list(rs[0].dice)
        out[row] = {
            "title": ROWS[row].title if row in ROWS else row,
            "seeds": [r.seed for r in rs],
            "dice": {s: _stat([r.dice[s] for r in rs]) for s in structures},
            "hd95": {s: _stat([r.hd95[s] for r in rs]) for s in structures},
            "mean_dice": _stat([r.mean_dice for r in rs]),
            "train_cases": rs[0].train_cases,
            "seconds": {k: float(np.mean([r.seconds.get(k, 0.0) for r in rs])) for k in rs[0].seconds},
            "per_seed_mean_dice": {str(r.seed): r.mean_dice for r in rs},
            "trainer": rs[0].trainer,
            "vs_source": paired_difference(rs, rows["source"]) if "source" in rows and row != "source" else None,
        }
    return out


def _fmt(stat: dict, digits: int = 3) -> str:
    if not np.isfinite(stat["mean"]):
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    return text + (f" ± {stat['sd']:.{digits}f}" if stat["sd"] is not None else "")


def markdown_table(summary: dict) -> str:
    """Markdown: one line per row, mean Dice, Dice per structure, mean HD95 per structure (mm), cases, train time."""
    structures = list(next(iter(summary.values()))["dice"])
    head = ["row", "mean Dice"] + [f"Dice {s}" for s in structures] + [f"HD95 {s} (mm)" for s in structures]
    head += ["Δ mean Dice vs source [95 % CI]", "seeds", "train cases", "train s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in summary.values():
        cells = [row["title"], _fmt(row["mean_dice"])]
        cells += [_fmt(row["dice"][s]) for s in structures] + [_fmt(row["hd95"][s], 1) for s in structures]
        d = row.get("vs_source")
        cells += [f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] (n={d['n']})" if d else "–",
                  str(len(row["seeds"])), str(row["train_cases"]), f"{row['seconds'].get('train', 0.0):.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path, title: str) -> Path:
    """Grouped bar chart of Dice per structure and mean, one group per row (sd as error bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    structures = list(next(iter(summary.values()))["dice"])
    keys = structures + ["mean"]
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(summary)), 4.0))
    for i, key in enumerate(keys):
        stats = [row["mean_dice"] if key == "mean" else row["dice"][key] for row in summary.values()]
        ax.bar(np.arange(len(summary)) + i * width, [s["mean"] for s in stats], width,
               yerr=[s["sd"] or 0.0 for s in stats], label=key)
    for j, row in enumerate(summary.values()):  # each seed's mean Dice as a point on the row's mean bar
        points = list(row.get("per_seed_mean_dice", {}).values())
        ax.scatter([j + (len(keys) - 1) * width] * len(points), points, color="black", s=10, zorder=3)
    ax.set_xticks(np.arange(len(summary)) + 0.4 - width / 2)
    ax.set_xticklabels([row["title"].replace(" (", "\n(") for row in summary.values()], fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("Dice on held-out target volumes")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncols=len(keys))
    fig.tight_layout()
    return write_figure(fig, path, dpi=120)


def write_report(results: list[RowResult], out_dir: Path, title: str, notes: str = "") -> dict[str, Path]:
    """Write results.json, results.md and results.png under out_dir; return their paths."""
    summary = summarise(results)
    md = f"# {title}\n\n{markdown_table(summary)}\n{notes}"
    paths = {
        "json": write_text_atomic(json.dumps({"title": title, "summary": summary,
                                              "runs": [r.to_dict() for r in results]}, indent=1) + "\n",
                                  out_dir / "results.json"),
        "markdown": write_text_atomic(md, out_dir / "results.md"),
        "plot": plot(summary, out_dir / "results.png", title),
    }
    return paths
