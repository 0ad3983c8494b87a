"""The benchmark config (TOML): which data, which generator, which trainer, which rows.

Paths in the file are relative to the file itself (or absolute); the package never guesses data locations.
Example: benchmarks/configs/mscmrseg_bssfp_to_lge.toml. Unknown keys are errors (a typo must not silently fall
back to a default).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import tomllib

from mrgen_nnunet.benchmark.rows import DEFAULT_ROWS, ROWS
from mrgen_nnunet.errors import MRGenError


@dataclass
class DataSpec:
    """Where one dataset comes from: a converter layout, its root folder, the sequence and patient range."""

    layout: str
    root: Path
    sequence: str
    patients: str  # e.g. "1-20" or "21,22,25"


@dataclass
class BenchmarkConfig:
    """Everything one benchmark run needs. `out` holds every dataset, model and result of the run."""

    name: str
    out: Path
    source: DataSpec  # labelled source sequence (training labels)
    target: DataSpec  # target sequence images (generator stage 2; labels used only by the oracle row)
    test: DataSpec  # held-out target volumes with labels
    rows: list[str] = field(default_factory=lambda: list(DEFAULT_ROWS))  # names in rows.ROWS
    # generator: a trained generator folder, or "train" to train one with `generator_preset` / `generator_steps`
    generator: str = "train"
    generator_preset: str = "tiny"
    generator_steps: int = 200  # optimizer steps per stage (autoencoder, text, mask)
    generator_resolution: int | None = None  # model resolution; None = the preset's
    generator_minutes: float = 0.0  # wall-time budget per stage (stops before generator_steps); 0: none
    # synthesis
    filter: str = "none"  # a name in filtering.backends.FILTERS: "sam2" | "nnunet" | "none"
    profile: str = "fast"  # synthesis profile, "fast" | "reference" (MRGen's settings); fills what is left unset
    candidates: int = 2
    keep: int = 1
    inference_steps: int | None = None  # None = the profile's (fast: DPM-Solver++ 20, reference: DDIM 50)
    guidance_scale: float = 7.0
    translate_strength: float = 0.6  # translate rows: share of the schedule run from the source image
    translate_method: str = "sdedit"  # translate rows: "sdedit" | "inversion"
    # randomised baselines
    copies: int = 4
    real_to_synthetic_ratio: float = 1.0
    # nnU-Net (identical for every row)
    trainer: str = "nnUNetTrainerMRGen_30epochs_60it"
    spacing_mm: float | None = 2.5  # in-plane 2d spacing of the shared plan; None = nnU-Net's own choice
    seeds: list[int] = field(default_factory=lambda: [0])
    device: str = "cpu"
    first_dataset_id: int = 600
    # self-training rows: pseudo_labels.rules.PseudoLabelRules fields, e.g. {slice_confidence = 0.9}
    pseudo_label_rules: dict = field(default_factory=dict)


def patient_list(spec: DataSpec) -> list[int]:
    """The patient numbers of a DataSpec, e.g. "1-3,7" -> [1, 2, 3, 7] (sorted, each once)."""
    from mrgen_nnunet.dataset_converters.sources import parse_patients

    wanted = parse_patients(spec.patients, spec.root)
    if not wanted:
        raise MRGenError(f"bad patient range {spec.patients!r}", spec.root, "write e.g. '1-20' or '21,22,25'")
    return sorted(wanted)


def _data(d: dict, key: str, base: Path, where: Path) -> DataSpec:
    if not isinstance(d, dict):
        raise MRGenError(f"missing table [{key}]", where, "add layout, root, sequence, patients")
    known = {f.name for f in fields(DataSpec)}
    unknown = set(d) - known
    missing = known - set(d)
    if unknown or missing:
        raise MRGenError(f"[{key}] has unknown keys {sorted(unknown)} / lacks {sorted(missing)}", where,
                         f"use exactly {sorted(known)}")
    root = (base / d["root"]).resolve()
    spec = DataSpec(d["layout"], root, d["sequence"], str(d["patients"]))
    patient_list(spec)
    return spec


# the TOML type of every scalar/list key (a wrong type must fail here, not as a TypeError minutes later)
_TYPES = {"name": str, "out": str, "rows": (list, str), "generator": str, "generator_preset": str,
          "generator_steps": int, "generator_resolution": (int, type(None)), "generator_minutes": float, "filter": str, "profile": str,
          "candidates": int, "keep": int, "inference_steps": (int, type(None)), "guidance_scale": float,
          "translate_strength": float, "translate_method": str, "copies": int, "real_to_synthetic_ratio": float,
          "trainer": str, "spacing_mm": (float, type(None)), "seeds": (list, int), "device": str,
          "first_dataset_id": int, "pseudo_label_rules": dict}


def _check_types(raw: dict, where: Path) -> None:
    for key, want in _TYPES.items():
        if key not in raw:
            continue
        value = raw[key]
        if isinstance(want, tuple) and want[0] is list:
            ok = isinstance(value, list) and all(isinstance(v, want[1]) and not isinstance(v, bool) for v in value)
            text = f"a list of {want[1].__name__}"
        else:
            kinds = want if isinstance(want, tuple) else (want,)
            kinds = kinds + ((int,) if float in kinds else ())
            ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
            text = " or ".join("null" if k is type(None) else k.__name__ for k in dict.fromkeys(kinds))
        if not ok:
            raise MRGenError(f"'{key}' must be {text}, got {value!r}", where, f"fix the value of '{key}'")


def load_config(path: str | Path) -> BenchmarkConfig:
    """Parse and check a benchmark TOML file (MRGenError on any problem, naming the key)."""
    path = Path(path)
    if not path.is_file():
        raise MRGenError("benchmark config not found", path, "see benchmarks/configs/ for an example")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise MRGenError(f"invalid TOML: {exc}", path, "fix the syntax") from None
    base = path.parent
    known = {f.name for f in fields(BenchmarkConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise MRGenError(f"unknown config key(s) {unknown}", path, f"known keys: {sorted(known)}")
    for key in ("name", "out", "source", "target", "test"):
        if key not in raw:
            raise MRGenError(f"config lacks '{key}'", path, "see benchmarks/configs/ for an example")
    _check_types(raw, path)
    values = dict(raw)
    values["out"] = (base / raw["out"]).resolve()
    for key in ("source", "target", "test"):
        values[key] = _data(raw[key], key, base, path)
    if raw.get("generator", "train") != "train":
        values["generator"] = str((base / raw["generator"]).resolve())
    cfg = BenchmarkConfig(**values)
    bad = [r for r in cfg.rows if r not in ROWS]
    if bad:
        raise MRGenError(f"unknown row(s) {bad}", path, f"rows are {list(ROWS)}")
    from mrgen_nnunet.filtering.backends import FILTERS

    if cfg.filter not in FILTERS:
        raise MRGenError(f"unknown filter {cfg.filter!r}", path, f"use one of {', '.join(map(repr, FILTERS))}")
    from mrgen_nnunet.synthesis.profiles import PROFILES  # imports torch: only when a config is loaded

    if cfg.profile not in PROFILES:
        raise MRGenError(f"unknown profile {cfg.profile!r}", path, f"use one of {', '.join(PROFILES)}")
    if not cfg.seeds:
        raise MRGenError("seeds is empty", path, "give at least one seed, e.g. seeds = [0]")
    from mrgen_nnunet.validation import at_least, between, one_of

    one_of(cfg.translate_method, ("sdedit", "inversion"), f"{path} translate_method")
    between(cfg.translate_strength, 0.0, 1.0, f"{path} translate_strength")
    for key in ("generator_steps", "candidates", "keep", "copies"):
        at_least(getattr(cfg, key), 1, f"{path} {key}")
    at_least(cfg.keep, 1, f"{path} keep")
    at_least(cfg.generator_minutes, 0.0, f"{path} generator_minutes")
    if cfg.keep > cfg.candidates:
        raise MRGenError(f"keep {cfg.keep} > candidates {cfg.candidates}", path, "keep at most `candidates`")
    from mrgen_nnunet.pseudo_labels.rules import PseudoLabelRules

    try:
        PseudoLabelRules(**cfg.pseudo_label_rules)
    except TypeError as exc:
        raise MRGenError(f"bad pseudo_label_rules ({exc})", path, "use fields of PseudoLabelRules") from None
    return cfg
