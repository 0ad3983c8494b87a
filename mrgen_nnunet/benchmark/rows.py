"""The benchmark's row table: what each row trains on and with which trainer. Adding a row is one entry here.

A row merges *parts* (datasets the benchmark builds once per seed or shares across seeds):
  source     real source slices with labels            target     real target slices with labels (oracle only)
  synthetic  generated target-sequence slices (mask mode: MRGen's protocol)
  translate  the source slices translated into the target sequence (synthesize --mode translate; labels kept)
  labelmap / remap   fixed randomised copies of the source
  pseudo     real target training images labelled by the `base` row's model of the same seed (self-training;
             the test patients can never enter it), or by the ensemble of the base and the `voters` rows' models
`uses_ratio`: sample real:synthetic at the config's `real_to_synthetic_ratio` (nnUNetTrainerMRGen's sampling).
`trainer`: the trainer family; the config's trainer schedule is kept and its family replaced, e.g. the config's
`nnUNetTrainerMRGen_30epochs_60it` becomes `nnUNetTrainerMRGenAug_30epochs_60it` for an `nnUNetTrainerMRGenAug` row.
"""

from __future__ import annotations

from dataclasses import dataclass

from mrgen_nnunet.errors import MRGenError

PARTS = ("source", "target", "synthetic", "translate", "labelmap", "remap", "pseudo")
SEED_PARTS = ("synthetic", "translate", "labelmap", "remap")  # drawn anew for every seed
GENERATED = ("synthetic", "translate")  # parts that need the generator
BASE_TRAINER = "nnUNetTrainerMRGen"


@dataclass(frozen=True)
class Row:
    name: str
    title: str
    parts: tuple[str, ...]
    uses_ratio: bool = False
    trainer: str = BASE_TRAINER
    base: str | None = None  # the row whose trained model pseudo-labels the target images (rows with "pseudo")
    # start from the base row's trained weights (`nnUNetv2_train -pretrained_weights`, nnU-Net's fine-tuning: all
    # but the 1x1 segmentation heads) instead of from scratch; trains on its own copy of the merged dataset so its
    # model folder is not the from-scratch row's
    finetune: bool = False
    # rows whose models (same seed) label the target images together with the base's: the pseudo-labels come from
    # the ensemble's averaged softmax (`pseudo-label --model A --model B`); the weights still come from the base
    voters: tuple[str, ...] = ()

    @property
    def labellers(self) -> tuple[str, ...]:
        """The rows whose trained models make this row's pseudo-labels: (base, *voters), () without a base."""
        return (self.base, *self.voters) if self.base is not None else ()


ROWS: dict[str, Row] = {r.name: r for r in (
    Row("source", "source only", ("source",)),
    Row("source+aug", "source, augmented trainer", ("source",), trainer="nnUNetTrainerMRGenAug"),
    Row("source+aug-sla", "source, augmented trainer (SLAug styles only)", ("source",),
        trainer="nnUNetTrainerMRGenAugSLA"),
    Row("source+aug-ipa", "source, augmented trainer (+ IPA blends)", ("source",),
        trainer="nnUNetTrainerMRGenAugIPA"),
    Row("source+aug-cons", "source, augmented trainer (+ consistency between two appearances)", ("source",),
        trainer="nnUNetTrainerMRGenAugCons"),
    Row("synthetic", "synthetic only (MRGen)", ("synthetic",)),
    Row("synthetic+source", "synthetic + source", ("source", "synthetic"), uses_ratio=True),
    Row("synthetic+source+aug", "synthetic + source, augmented trainer", ("source", "synthetic"), uses_ratio=True,
        trainer="nnUNetTrainerMRGenAug"),
    Row("translate+source", "translated + source", ("source", "translate"), uses_ratio=True),
    Row("translate+source+aug", "translated + source, augmented trainer", ("source", "translate"),
        uses_ratio=True, trainer="nnUNetTrainerMRGenAug"),
    # the redraw replaces the target appearance the translation made for 80 % of the translated samples; this row
    # redraws the source slices only
    Row("translate+source+aug-keep", "translated + source, augmented trainer on the source slices only",
        ("source", "translate"), uses_ratio=True, trainer="nnUNetTrainerMRGenAugKeep"),
    Row("labelmap", "source + label-map randomised (SynthSeg-style)", ("source", "labelmap")),
    Row("remap", "source + intensity-remapped (GIN/BigAug-style)", ("source", "remap")),
    Row("synthetic+source+remap", "synthetic + source + remapped", ("source", "synthetic", "remap"),
        uses_ratio=True),
    Row("oracle", "target oracle", ("target",)),
    Row("selftrain", "source + pseudo-labelled target (base: source, augmented trainer)", ("source", "pseudo"),
        trainer="nnUNetTrainerMRGenAug", base="source+aug"),
    Row("selftrain-ft", "source + pseudo-labelled target, fine-tuned from the base (base: source, augmented trainer)",
        ("source", "pseudo"), trainer="nnUNetTrainerMRGenAug", base="source+aug", finetune=True),
    Row("selftrain-ft-ipa", "source + pseudo-labelled target, fine-tuned from the base (base: source, augmented "
        "trainer + IPA blends)", ("source", "pseudo"), trainer="nnUNetTrainerMRGenAugIPA", base="source+aug-ipa",
        finetune=True),
    Row("selftrain2", "source + pseudo-labelled target, 2nd round (base: selftrain)", ("source", "pseudo"),
        trainer="nnUNetTrainerMRGenAug", base="selftrain"),
    Row("selftrain-ft-ens", "source + target pseudo-labelled by both bases' ensemble, fine-tuned from the IPA base",
        ("source", "pseudo"), trainer="nnUNetTrainerMRGenAugIPA", base="source+aug-ipa", finetune=True,
        voters=("source+aug",)),
    Row("selftrain2-ft-ipa", "source + pseudo-labelled target, 2nd round fine-tuned from the 1st (base: "
        "selftrain-ft-ipa)", ("source", "pseudo"), trainer="nnUNetTrainerMRGenAugIPA", base="selftrain-ft-ipa",
        finetune=True),
    Row("selftrain2-ft-ens", "source + target pseudo-labelled by the ensemble of two self-trained rows, fine-tuned "
        "from the ensemble-labelled row (base: selftrain-ft-ens)", ("source", "pseudo"),
        trainer="nnUNetTrainerMRGenAugIPA", base="selftrain-ft-ens", finetune=True, voters=("selftrain2-ft-ipa",)),
    # the same data, labels and start as selftrain2-ft-ens, but nnU-Net's own augmentation only: the appearance
    # redraw replaces the real target appearance of 80 % of the pseudo-labelled samples, which the last round,
    # already robust, may no longer need
    Row("selftrain2-ft-ens-plain", "source + target pseudo-labelled by the ensemble of two self-trained rows, "
        "fine-tuned from the ensemble-labelled row with nnU-Net's own augmentation only (base: selftrain-ft-ens)",
        ("source", "pseudo"), base="selftrain-ft-ens", finetune=True, voters=("selftrain2-ft-ipa",)),
    # the same again with the redraw kept for the source slices only (nnUNetTrainerMRGenAugKeep): robustness from
    # the source's new appearances, the target's own appearance from the pseudo-labelled scans
    Row("selftrain2-ft-ens-keep", "source + target pseudo-labelled by the ensemble of two self-trained rows, "
        "fine-tuned from the ensemble-labelled row, appearance redrawn on the source slices only (base: "
        "selftrain-ft-ens)", ("source", "pseudo"), trainer="nnUNetTrainerMRGenAugKeep", base="selftrain-ft-ens",
        finetune=True, voters=("selftrain2-ft-ipa",)),
    Row("selftrain-ft-ens-plain", "source + target pseudo-labelled by both bases' ensemble, fine-tuned from the IPA "
        "base with nnU-Net's own augmentation only", ("source", "pseudo"), base="source+aug-ipa", finetune=True,
        voters=("source+aug",)),
)}
# the rows a config runs when it names none (the original seven)
DEFAULT_ROWS = ("source", "synthetic", "synthetic+source", "labelmap", "remap", "synthetic+source+remap", "oracle")


def row_trainer(row: Row, config_trainer: str) -> str:
    """The trainer class name for `row` given the config's trainer (whose schedule suffix is kept)."""
    if not config_trainer.startswith(BASE_TRAINER) or row.trainer == BASE_TRAINER:
        return config_trainer
    suffix = config_trainer[len(BASE_TRAINER):]
    if suffix.startswith("Aug"):  # the config already names an augmented trainer
        return config_trainer
    return row.trainer + suffix


def rounds(rows: list[str]) -> list[list[str]]:
    """`rows` and the base (and voter) rows they need, in training rounds: round 0 has the rows without a base,
    round k the rows whose last labeller (base or voter) trains in round k-1 (self-training round k). Within a
    round, labellers that were not asked for come first, then the asked rows in their order."""
    def level(name: str) -> int:
        return 1 + max((level(r) for r in ROWS[name].labellers), default=-1)

    wanted: list[str] = []

    def want(name: str) -> None:  # the row, then what labels it (depth first: base before voters)
        if name not in wanted:
            wanted.append(name)
            for r in ROWS[name].labellers:
                want(r)

    for name in rows:
        want(name)
    ordered = sorted(wanted, key=lambda r: (r in rows, rows.index(r) if r in rows else wanted.index(r)))
    return [[r for r in ordered if level(r) == k] for k in range(1 + max((level(r) for r in wanted), default=0))]


def row_key_parts(row: Row) -> str:
    """The parts of a row as its merged dataset's key names them: a row whose base is itself self-trained adds the
    base (its pseudo-labels come from another model), an ensemble-labelled row all its labellers (`@a,b`), a
    fine-tuned row `#finetune` (its own dataset, hence its own model folder); first-round rows keep the key they
    always had."""
    tag = "+".join(row.parts)
    if row.voters or (row.base is not None and ROWS[row.base].base is not None):
        tag = f"{tag}@{','.join(row.labellers)}"
    return f"{tag}#finetune" if row.finetune else tag


def get_row(name: str, where: object = "rows") -> Row:
    if name not in ROWS:
        raise MRGenError(f"unknown row {name!r}", where, f"rows are {list(ROWS)}")
    return ROWS[name]
