"""`pseudo_label`: a trained 2D nnU-Net model + real unlabelled target images -> a slice dataset of those images
with their confident predictions as labels (the self-training step of the cross-sequence winners).

The model is loaded through the safe loader (`NnUNetFilter.from_folder`: weights_only unless trusted) and predicts
each image volume slice by slice with mirroring test-time augmentation; several folds of a model average their
logits (nnU-Net's fold ensemble), several models their softmax probabilities (`nnUNetv2_ensemble`'s rule), so the
labels can come from an ensemble; `rules.decide_slice` keeps or drops each slice. Kept slices are written like
every other slice dataset (2D NIfTI at the slice's own geometry), listed in
`mrgen.pseudo_cases` (nnUNetTrainerMRGen* never validates on them) with an `ignore` label for unconfident pixels;
`pseudo_labels.json` beside dataset.json records the model, the rules, and per case the slices seen and kept and
their confidence. Patients listed in `exclude` (the test set) can never enter the pool.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mrgen_nnunet.data.io import read_image, slice_geometry
from mrgen_nnunet.data.nnunet_raw import read_dataset_json
from mrgen_nnunet.data.slice_datasets import SliceCase, write_slice_dataset
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.pseudo_labels.rules import PseudoLabelRules, decide_slice


def _images_and_patients(images: Path) -> tuple[dict[str, Path], dict[str, str], dict]:
    """(case -> image file, case -> patient, dataset.json or {}) of a folder of CASE_0000.nii.gz files, or of an
    nnU-Net raw dataset folder (patients from its `mrgen` key): its imagesTr, or its imagesTs when the dataset is
    images-only (`convert ... --images-only`, `mrgen.images_only`) or its imagesTr holds no image."""
    meta = read_dataset_json(images) if (images / "dataset.json").is_file() else {}
    folder = images
    if meta:
        images_only = (meta.get("mrgen") or {}).get("images_only")
        folder = images / "imagesTr"
        if images_only or not any(folder.glob("*_0000.nii.gz")):
            folder = images / "imagesTs"
    files = {p.name[:-len("_0000.nii.gz")]: p for p in sorted(folder.glob("*_0000.nii.gz"))}
    if not files:
        raise MRGenError("no images (CASE_0000.nii.gz) to pseudo-label", folder,
                         "point --images at an nnU-Net images folder or raw dataset (imagesTr, or imagesTs of an "
                         "images-only dataset)")
    patients = (meta.get("mrgen") or {}).get("patients") or {}
    return files, {c: patients.get(c, c) for c in files}, meta


def pseudo_label(model: str | Path | Sequence[str | Path], images: str | Path, out_raw: str | Path, dataset_id: int,
                 name: str = "pseudo", rules: PseudoLabelRules | None = None,
                 fold: int | str | Sequence[int | str] = 0, device: str = "cpu",
                 exclude: set[str] | frozenset[str] = frozenset(), trust: bool = False, mirroring: bool = True,
                 sequence: str | None = None, force: bool = False) -> Path:
    """Write `Dataset{dataset_id}_{name}` under `out_raw`; returns its folder.

    model: nnUNet_results/DatasetNNN_X/TRAINER__PLANS__2d (a finished `fold`), or several such folders (same label
    map and channels; each with the same `fold` or folds) whose probabilities are averaged.
    images: folder of CASE_0000.nii.gz (2D or 3D) or a raw dataset folder (labelled: its imagesTr; images-only: its
    imagesTs). exclude: case or patient ids that must not be pseudo-labelled (refused).
    sequence: the target sequence the images must be (checked against a raw dataset's modality/channel names; the
    model itself was usually trained on another sequence, which is the point).
    """
    from mrgen_nnunet.filtering.nnunet_filter import NnUNetFilter

    rules = rules or PseudoLabelRules()
    files, patients, image_meta = _images_and_patients(Path(images))
    leaked = sorted(c for c in files if c in exclude or patients[c] in exclude)
    if leaked:
        raise MRGenError(f"{len(leaked)} image(s) belong to excluded (test) patients, e.g. {leaked[0]!r}", images,
                         "pseudo-label only training images; never the test set")
    models = [Path(model)] if isinstance(model, (str, Path)) else [Path(m) for m in model]
    if not models:
        raise MRGenError("no model given", "--model", "pass a trained nnU-Net model folder")
    filters = [NnUNetFilter.from_folder(folder, fold=fold, device=device, trust=trust) for folder in models]
    labels, predictor = dict(filters[0].labels), filters[0].predictor
    for folder, other in zip(models[1:], filters[1:], strict=True):  # an ensemble averages like with like
        if other.labels != labels:
            raise MRGenError(f"model labels {other.labels} differ from {labels} of {models[0]}", folder,
                             "ensemble models trained on one label map")
        if other.predictor.dataset_json["channel_names"] != predictor.dataset_json["channel_names"]:
            raise MRGenError(f"model input channels differ from those of {models[0]}", folder,
                             "ensemble models trained on the same channels")
    predictors = [f.predictor for f in filters]
    for p in predictors:
        p.use_mirroring = bool(mirroring and p.allowed_mirroring_axes)
    channels = image_meta.get("channel_names") or predictor.dataset_json["channel_names"]
    if len(channels) != len(predictor.dataset_json["channel_names"]):
        raise MRGenError(f"images have {len(channels)} channel(s), the model takes "
                         f"{len(predictor.dataset_json['channel_names'])}", images, "use images the model can read")
    modality = (image_meta.get("mrgen") or {}).get("modality") or ""
    if sequence is not None and image_meta and sequence.lower() not in \
            " ".join([modality, *map(str, channels.values())]).lower():
        raise MRGenError(f"images are {modality or channels}, not {sequence}", images,
                         "pseudo-label scans of the target sequence only")
    ignore = max(labels.values()) + 1

    cases, report, reasons = [], {}, Counter()
    for case, path in files.items():
        volume, geometry = read_image(path)
        volume3d = volume if volume.ndim == 3 else volume[None]
        spacing = list(reversed(geometry.spacing)) if volume.ndim == 3 else [999.0, *reversed(geometry.spacing)]
        probabilities = np.mean([np.asarray(p.predict_single_npy_array(volume3d[None].astype(np.float32),
                                                                        {"spacing": spacing},
                                                                        save_or_return_probabilities=True)[1])
                                 for p in predictors], axis=0)  # (K, Z, H, W) softmax, averaged over models
        kept, confidences = [], []
        for z in range(volume3d.shape[0]):
            decision = decide_slice(probabilities[:, z], rules, ignore)
            reasons[decision.reason] += 1
            if decision.keep:
                kept.append(z)
                confidences.append(decision.confidence)
                cases.append(SliceCase(f"{case}_z{z:03d}" if volume.ndim == 3 else case, patients[case],
                                       volume3d[z], decision.label,
                                       slice_geometry(geometry, z) if volume.ndim == 3 else geometry))
        report[case] = {"patient": patients[case], "slices": int(volume3d.shape[0]), "kept": kept,
                        "mean_confidence": float(np.mean(confidences)) if confidences else None}
    if not cases:
        raise MRGenError(f"no slice passed the pseudo-label rules ({dict(reasons)})", images,
                         "check that the model fits these images, or relax --slice-confidence / --min-foreground")
    total = sum(r["slices"] for r in report.values())
    provenance = {"models": [str(m.resolve()) for m in models],
                  "fold": fold if isinstance(fold, (int, str)) else list(fold), "mirroring": predictor.use_mirroring,
                  "rules": rules.to_dict(), "ignore_label": ignore, "kept_fraction": len(cases) / total,
                  "decisions": dict(reasons), "cases": report}
    meta = {"labels": {**labels, "ignore": ignore}, "channel_names": channels, "mrgen": {"modality": modality}}
    return write_slice_dataset(Path(out_raw), dataset_id, name, cases, meta, synthetic=False, force=force,
                               pseudo=True, extra_files={"pseudo_labels.json": json.dumps(provenance, indent=1)})
