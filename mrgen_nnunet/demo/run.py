"""`mrgen-nnunet demo`: the whole chain on the embedded phantom (or on real data), small enough for a laptop CPU.

phantom (MS-CMRSeg layout) -> convert (source slices + index, target images + index, test volumes)
-> train the `tiny` generator (autoencoder, text, mask stages) -> synthesize the target sequence from the source
labels -> one shared nnU-Net plan -> short nnU-Net runs -> Dice/HD95 on held-out target volumes.
It is a benchmark with a small built-in config (`demo_config`): the same code path as `mrgen-nnunet benchmark`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mrgen_nnunet.benchmark.config import BenchmarkConfig, DataSpec
from mrgen_nnunet.errors import MRGenError


@dataclass(frozen=True)
class DemoSize:
    """How big the demo is. `default` took 6.3 min on 2 quiet CPU cores (2 jobs; benchmarks/README.md); `test` is
    the fast-test version."""

    patients: int = 8  # phantom patients per sequence; the last `test_patients` are the test set
    test_patients: int = 2
    slices: int = 6
    size: int = 64
    # 600 steps per stage is where the phantom's LGE look appears (150 gave noise blobs); 10x30 nnU-Net iterations
    # is where the synthetic + source row leaves the all-background start (10x10 stayed there, Dice 0)
    generator_steps: int = 600
    generator_resolution: int = 64
    inference_steps: int = 10
    trainer: str = "nnUNetTrainerMRGen_10epochs_30it"
    rows: tuple[str, ...] = ("source", "synthetic+source", "remap")


DEFAULT = DemoSize()
TEST = DemoSize(patients=4, test_patients=1, slices=3, size=32, generator_steps=3, generator_resolution=32,
                inference_steps=2, trainer="nnUNetTrainerMRGen_1epochs_10it", rows=("source", "synthetic+source"))


def demo_config(out: Path, data: tuple[str, Path] | None = None, size: DemoSize = DEFAULT) -> BenchmarkConfig:
    """The demo's benchmark config. `data` = (layout, root) of real data, e.g. ("mscmrseg", DIR); None = phantom.

    Phantom / MS-CMRSeg: source bSSFP patients 1..n-t (labels), target LGE 1..n-t (images), test LGE n-t+1..n.
    """
    if data is None:
        from mrgen_nnunet.demo.phantom import PhantomSpec, make_phantom

        root = out / "phantom"
        if not (root / "LGE" / f"image_{size.patients}.nii.gz").is_file():
            make_phantom(root, PhantomSpec(n_patients=size.patients, n_slices=size.slices, size=size.size))
        layout, n, t = "mscmrseg", size.patients, size.test_patients
    else:
        layout, root = data
        if layout != "mscmrseg":
            raise MRGenError(f"the demo knows the 'mscmrseg' layout, not {layout!r}", "--data",
                             "write a benchmark config for other layouts (benchmarks/configs/)")
        root, n, t = Path(root), 25, 5
    train, test = f"1-{n - t}", f"{n - t + 1}-{n}"
    return BenchmarkConfig(
        name="demo" if data is None else f"demo_{layout}",
        out=out,
        source=DataSpec(layout, root, "bSSFP", train),
        target=DataSpec(layout, root, "LGE", train),
        test=DataSpec(layout, root, "LGE", test),
        rows=list(size.rows),
        generator="train",
        generator_preset="tiny",
        generator_steps=size.generator_steps,
        generator_resolution=size.generator_resolution,
        filter="none",
        candidates=1,
        keep=1,
        inference_steps=size.inference_steps,
        copies=2,
        trainer=size.trainer,
        spacing_mm=None if data is None else 2.5,
        seeds=[0],
        first_dataset_id=900,
    )


def run_demo(out: Path, data: tuple[str, Path] | None = None, size: DemoSize = DEFAULT, console=None) -> dict:
    """Run the demo; returns {"results": [...], "report": {...paths}, "contact_sheet": Path | None}."""
    from mrgen_nnunet.benchmark.protocol import run_benchmark
    from mrgen_nnunet.environment import usable_cpus

    cfg = demo_config(Path(out).resolve(), data, size)
    # two jobs where two CPUs are usable: the rows that need no generator train while it trains. Also beside a busy
    # job: one job there was slower (13.9 vs 11.5 min on 2 cores, benchmarks/README.md "Demo wall time")
    results, paths = run_benchmark(cfg, console, jobs=2 if usable_cpus() >= 2 else 1)
    sheets = sorted((cfg.out / "nnUNet_raw").glob("Dataset*_synthetic_s0/*.png"))
    return {"results": results, "report": paths, "contact_sheet": sheets[0] if sheets else None, "config": cfg}
