"""`mrgen-nnunet pseudo-label --model DIR [--model DIR ...] --images DIR --out-dataset ID`: parse, then call
`pseudo_labels.run.pseudo_label`."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from mrgen_nnunet.errors import MRGenError


def pseudo_label(
    model: list[Path] = typer.Option(..., "--model", help="Trained nnU-Net model folder, i.e. nnUNet_results / "
                                     "DatasetNNN_X / TRAINER__PLANS__2d (with a finished fold). Repeat it to label "
                                     "with an ensemble (softmax averaged over the models, as nnUNetv2_ensemble)."),
    images: Path = typer.Option(..., "--images", help="Unlabelled target images: a folder of CASE_0000.nii.gz, "
                                "an nnU-Net raw dataset folder (its imagesTr; labels there are never read) or an "
                                "images-only dataset (its imagesTs, as convert writes without labels)."),
    out_dataset: int = typer.Option(..., "--out-dataset", min=1, max=999, help="Id of the new dataset."),
    name: str = typer.Option("pseudo", "--name", help="Name of the new dataset (DatasetNNN_NAME)."),
    out_raw: Path | None = typer.Option(None, "--out-raw", help="nnU-Net raw folder to write to "
                                        "[default: $nnUNet_raw]."),
    fold: str = typer.Option("0", "--fold", help="Fold of the model to use (0-4 or all), or several "
                             "comma-separated (0,1,2,3,4) whose predictions are averaged."),
    sequence: str | None = typer.Option(None, "--sequence", help="Target sequence the images must be, e.g. LGE "
                                        "(checked against a raw dataset's modality and channel names)."),
    exclude: str = typer.Option("", "--exclude", help="Comma-separated case or patient ids that must never be "
                                "pseudo-labelled (your test set); an image among them is refused."),
    pixel_confidence: float = typer.Option(0.7, "--pixel-confidence", help="Pixels whose top probability is "
                                           "lower get the ignore label."),
    slice_confidence: float = typer.Option(0.85, "--slice-confidence", help="Keep a slice only if the mean top "
                                           "probability over its predicted foreground reaches this."),
    min_foreground: float = typer.Option(0.005, "--min-foreground", help="Keep a slice only if its predicted "
                                         "foreground covers this fraction."),
    min_component_share: float = typer.Option(0.8, "--min-component-share", help="Each structure's largest "
                                              "connected component must hold this share of its pixels."),
    require: str = typer.Option("", "--require", help="Comma-separated label names every kept slice must "
                                "contain, e.g. 'left ventricle,myocardium'."),
    no_mirroring: bool = typer.Option(False, "--no-mirroring", help="Predict without mirroring test-time "
                                      "augmentation (faster, less reliable confidence)."),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint", help="Load the checkpoint with full "
                                          "pickle (runs its code; trusted files only)."),
    device: str = typer.Option("auto", "--device", help="auto (cuda, else mps, else cpu) | cuda | cuda:N | mps | cpu."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing dataset with this id."),
) -> None:
    """Segment real unlabelled target scans with a trained model; keep confident slices as a training dataset."""
    import json

    from mrgen_nnunet.environment import resolve_device
    from mrgen_nnunet.pseudo_labels.rules import PseudoLabelRules
    from mrgen_nnunet.pseudo_labels.run import pseudo_label as run

    raw = out_raw or (Path(os.environ["nnUNet_raw"]) if os.environ.get("nnUNet_raw") else None)
    if raw is None:
        raise MRGenError("no output raw folder", "--out-raw", "pass --out-raw or set nnUNet_raw")
    labels = {}
    if (model[0] / "dataset.json").is_file():
        labels = json.loads((model[0] / "dataset.json").read_text(encoding="utf-8")).get("labels", {})
    required = []
    for item in (x.strip() for x in require.split(",") if x.strip()):
        if item not in labels or item == "background":
            raise MRGenError(f"unknown structure {item!r}", "--require", f"use label names of the model: "
                             f"{[k for k in labels if k != 'background']}")
        required.append(int(labels[item]))
    rules = PseudoLabelRules(pixel_confidence, slice_confidence, min_foreground, min_component_share,
                             tuple(required))
    folds = [int(f) if f.isdigit() else f for f in (x.strip() for x in fold.split(",")) if f]
    if not folds:
        raise MRGenError(f"no fold in {fold!r}", "--fold", "give a fold (0-4 or all) or several, e.g. 0,1,2,3,4")
    folder = run(model, images, raw, out_dataset, name, rules=rules, fold=folds[0] if len(folds) == 1 else folds,
                 device=resolve_device(device), exclude={x.strip() for x in exclude.split(",") if x.strip()},
                 trust=trust_checkpoint, mirroring=not no_mirroring, sequence=sequence, force=force)
    report = json.loads((folder / "pseudo_labels.json").read_text(encoding="utf-8"))
    typer.echo(f"kept {len(json.loads((folder / 'dataset.json').read_text(encoding='utf-8'))['mrgen']['pseudo_cases'])}"
               f" slices ({report['kept_fraction']:.0%} of {sum(c['slices'] for c in report['cases'].values())}); "
               f"decisions {report['decisions']}")
    typer.echo(f"wrote {folder}")
