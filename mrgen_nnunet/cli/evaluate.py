"""`mrgen-nnunet evaluate --pred DIR --gt DIR [--labels name=value,...] --out DIR`: per-volume Dice and HD95."""

from pathlib import Path

import typer

from mrgen_nnunet.errors import MRGenError


def _parse_labels(text: str | None) -> dict[str, int] | None:
    if text is None:
        return None
    labels = {}
    for item in text.split(","):
        name, _, value = item.partition("=")
        if not name.strip() or not value.strip().lstrip("-").isdigit():
            raise MRGenError(f"cannot parse label {item!r}", "--labels", "write e.g. background=0,myocardium=1,LV=2")
        labels[name.strip()] = int(value)
    return labels


def evaluate(
    pred: Path = typer.Option(..., "--pred", help="folder of predicted CASE.nii.gz (e.g. nnUNetv2_predict output)"),
    gt: Path = typer.Option(..., "--gt", help="folder of ground-truth CASE.nii.gz (e.g. labelsTs)"),
    out: Path = typer.Option(..., "--out", help="folder for summary.json, metrics.csv, metrics.md, metrics.png"),
    labels: str = typer.Option(None, "--labels", help="label map name=value,... [default: dataset.json of --pred]"),
    largest_component: bool = typer.Option(False, "--largest-component", help="score only the largest connected "
                                           "component of each label (post-processed volumes go to OUT/postprocessed)"),
) -> None:
    """Dice (nnU-Net's metric code) and HD95 in mm per label per 3D volume, per case and mean."""
    from mrgen_nnunet.evaluation.metrics import evaluate_folder

    result = evaluate_folder(pred, gt, _parse_labels(labels), out, largest_component=largest_component)
    for name, m in result["mean"].items():
        dice = "n/a" if m["Dice"] is None else f"{m['Dice']:.4f}"
        hd = "n/a" if m["HD95_mm"] is None else f"{m['HD95_mm']:.2f}"
        typer.echo(f"{name}: Dice {dice}  HD95 {hd} mm")
    typer.echo(f"wrote {out / 'summary.json'} ({result['n_cases']} volumes)")
