"""`mrgen-nnunet convert LAYOUT SRC ...`: a source layout -> nnU-Net raw dataset (+ generator index).

One subcommand per layout; each only parses its options and calls the converter from the registry.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import typer

from mrgen_nnunet.errors import MRGenError

app = typer.Typer(help="Convert a source dataset layout into an nnU-Net raw dataset and/or a generator index.",
                  no_args_is_help=True)

SRC = typer.Argument(..., help="source folder")
OUT_RAW = typer.Option(None, "--out-raw", help="nnU-Net raw folder [default: $nnUNet_raw]")
DATASET_ID = typer.Option(..., "--dataset-id", help="nnU-Net dataset id, 1..999")
NAME = typer.Option(None, "--name", help="dataset name (DatasetNNN_NAME)")
INDEX = typer.Option(None, "--index", help="also write the generator index (SliceRecord JSONL) here")
AS_SLICES = typer.Option(False, "--as-slices", help="2D slice dataset (training sets); default: 3D volumes (test sets)")
ALL_SLICES = typer.Option(False, "--all-slices", help="keep slices without foreground too")
PATIENTS = typer.Option(None, "--patients", help="patient ids, e.g. 1-20 or 1,3,5-7")
TABLE = typer.Option(None, "--modality-table", help="JSON/TOML modality attribute table (e.g. MRGen's)")
FORCE = typer.Option(False, "--force", help="replace an existing dataset with this id")


def _raw(out_raw: Path | None) -> Path:
    if out_raw is None and os.environ.get("nnUNet_raw"):
        return Path(os.environ["nnUNet_raw"])
    if out_raw is None:
        raise MRGenError("no output folder", "--out-raw", "pass --out-raw DIR or set nnUNet_raw")
    return out_raw


def _run(layout: str, **options) -> None:
    from mrgen_nnunet.dataset_converters import get_converter

    start = time.perf_counter()
    result = get_converter(layout)(**options)
    typer.echo(f"wrote {result} in {time.perf_counter() - start:.1f} s")


@app.command("mscmrseg")
def mscmrseg(src: Path = SRC, out_raw: Path = OUT_RAW, dataset_id: int = DATASET_ID, name: str = NAME,
             sequence: str = typer.Option(None, "--sequence",
                                          help="bSSFP or LGE [default: the sequence folder SRC names, else bSSFP]"),
             patients: str = PATIENTS,
             as_slices: bool = AS_SLICES, all_slices: bool = ALL_SLICES, index: Path = INDEX,
             modality_table: Path = TABLE, force: bool = FORCE) -> None:
    """MS-CMRSeg 2019: SRC/{bSSFP,LGE}/image_K.nii.gz + label_K.nii.gz."""
    _run("mscmrseg", src=src, out_raw=_raw(out_raw), dataset_id=dataset_id, name=name, sequence=sequence,
         patients=patients, as_slices=as_slices, all_slices=all_slices, index=index, modality_table=modality_table,
         force=force)


@app.command("chaos")
def chaos(src: Path = SRC, out_raw: Path = OUT_RAW, dataset_id: int = DATASET_ID, name: str = NAME,
          sequence: str = typer.Option(None, "--sequence", help="T2-SPIR, T1-InPhase or T1-OutofPhase "
                                       "[default: the sequence folder SRC names, else T2-SPIR]"),
          patients: str = PATIENTS, as_slices: bool = AS_SLICES, all_slices: bool = ALL_SLICES, index: Path = INDEX,
          modality_table: Path = TABLE, force: bool = FORCE) -> None:
    """CHAOS MR: original layout (MR/<id>/T2SPIR/DICOM_anon + Ground PNGs) or NIfTI image_K/label_K."""
    _run("chaos", src=src, out_raw=_raw(out_raw), dataset_id=dataset_id, name=name, sequence=sequence,
         patients=patients, as_slices=as_slices, all_slices=all_slices, index=index, modality_table=modality_table,
         force=force)


@app.command("msd-prostate")
def msd_prostate(src: Path = SRC, out_raw: Path = OUT_RAW, dataset_id: int = DATASET_ID, name: str = NAME,
                 sequence: str = typer.Option("T2", "--sequence", help="T2 or ADC"), patients: str = PATIENTS,
                 merge_prostate: bool = typer.Option(False, "--merge-prostate", help="PZ + TZ -> one 'prostate' label"),
                 as_slices: bool = AS_SLICES, all_slices: bool = ALL_SLICES, index: Path = INDEX,
                 modality_table: Path = TABLE, force: bool = FORCE) -> None:
    """MSD Task05_Prostate: 4D T2+ADC images, labels PZ=1, TZ=2."""
    _run("msd-prostate", src=src, out_raw=_raw(out_raw), dataset_id=dataset_id, name=name, sequence=sequence,
         patients=patients, merge_prostate=merge_prostate, as_slices=as_slices, all_slices=all_slices, index=index,
         modality_table=modality_table, force=force)


@app.command("mrgen-db")
def mrgen_db(src: Path = SRC, out_raw: Path = OUT_RAW, dataset_id: int = DATASET_ID, name: str = NAME,
             subset: str = typer.Option(None, "--subset", help="conditional dataset, e.g. MSCMR_LGE or MSCMR_LGE_train"),
             all_slices: bool = ALL_SLICES, index: Path = INDEX,
             strict: bool = typer.Option(False, "--strict", help="missing image files are fatal"),
             workers: int = typer.Option(1, "--workers", help="processes reading/writing slices (1: no pool)"),
             force: bool = FORCE) -> None:
    """MRGen-DB release: conditional_dataset/*.json + PNG slices and masks (always a slice dataset)."""
    _run("mrgen-db", src=src, out_raw=_raw(out_raw), dataset_id=dataset_id, name=name, subset=subset,
         all_slices=all_slices, index=index, strict=strict, force=force, workers=workers)


@app.command("mrgen-db-images")
def mrgen_db_images(src: Path = SRC, index: Path = typer.Option(..., "--index", help="index JSONL to write"),
                    strict: bool = typer.Option(False, "--strict", help="missing image files are fatal"),
                    modality_table: Path = TABLE,
                    force: bool = typer.Option(False, "--force", help="replace an existing index")) -> None:
    """MRGen-DB radiopaedia_data/*.json image-text records (no masks) -> index only."""
    _run("mrgen-db-images", src=src, index=index, strict=strict, modality_table=modality_table, force=force)


PATTERN_HELP = ("relative path with {id} (the case), optional {split}/{sequence}/other fields and * ** wildcards, "
                "e.g. '{split}/{id}/t1c.nii.gz' or 'sub-{id}/anat/sub-{id}_FLAIR.nii.gz'")


@app.command("nifti")
def nifti(src: Path = SRC, out_raw: Path = OUT_RAW, dataset_id: int = DATASET_ID, name: str = NAME,
          labels: str = typer.Option("", "--labels", help="label map, e.g. liver=1,spleen=2 (labelled images)"),
          sequence: str = typer.Option(..., "--sequence", help="modality name, e.g. LGE, T2-SPIR, T1c, FLAIR"),
          pattern: str = typer.Option("image_{id}.nii.gz", "--pattern", help="image files: " + PATTERN_HELP),
          label_pattern: str = typer.Option(None, "--label-pattern", help="label files, same fields as --pattern "
                                            "[default with --labels: label_{id}.nii.gz]"),
          images_only: bool = typer.Option(False, "--images-only", help="unlabelled images (the default when "
                                           "neither --labels nor --label-pattern is given): imagesTs + label-less "
                                           "index"),
          as_slices: bool = AS_SLICES, all_slices: bool = ALL_SLICES, index: Path = INDEX,
          modality_table: Path = TABLE, force: bool = FORCE) -> None:
    """Any folder tree of NIfTI images, with label maps (imagesTr/labelsTr) or without (imagesTs)."""
    _run("nifti", src=src, out_raw=_raw(out_raw), dataset_id=dataset_id, name=name, labels=labels,
         sequence=sequence, pattern=pattern, label_pattern=label_pattern, images_only=images_only,
         as_slices=as_slices, all_slices=all_slices, index=index, modality_table=modality_table, force=force)


@app.command("dicom")
def dicom(src: Path = SRC, out_raw: Path = OUT_RAW, dataset_id: int = DATASET_ID, name: str = NAME,
          sequence: str = typer.Option(..., "--sequence", help="modality name, e.g. FLAIR, T2w, LGE"),
          pattern: str = typer.Option("{id}", "--pattern", help="case folders, each holding one DICOM series: "
                                      + PATTERN_HELP.replace("t1c.nii.gz", "FLAIR").replace(
                                          "sub-{id}_FLAIR.nii.gz", "flair")),
          as_slices: bool = AS_SLICES, index: Path = INDEX, modality_table: Path = TABLE,
          force: bool = FORCE) -> None:
    """DICOM series folders (one series per case, unlabelled target scans) -> imagesTs + label-less index."""
    _run("dicom", src=src, out_raw=_raw(out_raw), dataset_id=dataset_id, name=name, sequence=sequence,
         pattern=pattern, as_slices=as_slices, index=index, modality_table=modality_table, force=force)


@app.command("nnunet")
def nnunet(src: Path = typer.Argument(..., help="an nnU-Net raw dataset folder"),
           index: Path = typer.Option(None, "--index", help="index JSONL [default: SRC/mrgen_index.jsonl]"),
           sequence: str = typer.Option(None, "--sequence", help="modality [default: from dataset.json]"),
           subset: str = typer.Option("Tr", "--subset", help="Tr (imagesTr) or Ts (imagesTs, unlabelled)"),
           images_only: bool = typer.Option(False, "--images-only", help="ignore labelsTr: label-less records "
                                            "(automatic for imagesTs and an imagesTr without labels)"),
           all_slices: bool = ALL_SLICES, modality_table: Path = TABLE,
           force: bool = typer.Option(False, "--force", help="replace an existing index")) -> None:
    """An existing nnU-Net raw dataset (labelled or not) -> generator index."""
    _run("nnunet", src=src, index=index, sequence=sequence, subset=subset, images_only=images_only,
         all_slices=all_slices, modality_table=modality_table, force=force)
