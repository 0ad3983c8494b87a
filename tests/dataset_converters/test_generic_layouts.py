"""Images-only conversion on the generic layouts (nifti by pattern, nnunet imagesTs / unlabelled imagesTr, DICOM
series folders), unusual intensity ranges, and the refusal of label-less records as synthesis sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from convert_helpers import blob_label, dicom_series, write

from mrgen_nnunet.data.io import read_image
from mrgen_nnunet.data.nnunet_raw import list_cases
from mrgen_nnunet.data.records import read_index
from mrgen_nnunet.errors import MRGenError


def nested(root: Path, cases: dict[str, str], shape=(4, 12, 10), seqs=("t1c", "flair"), seg=True) -> Path:
    """`<split>/<case>/{t1c,flair,seg}.nii.gz` with an oblique-free but shifted geometry per case."""
    rng = np.random.default_rng(0)
    for case, split in cases.items():
        lab = blob_label(shape, 2, rng)
        for i, seq in enumerate(seqs):
            img = sitk.GetImageFromArray((rng.random(shape) * 300 + 100 * i).astype(np.float32))
            img.SetSpacing((0.9, 0.8, 3.0))
            img.SetOrigin((-10.0, 5.0, 2.0 * len(case)))
            img.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
            (root / split / case).mkdir(parents=True, exist_ok=True)
            sitk.WriteImage(img, str(root / split / case / f"{seq}.nii.gz"))
        if seg:
            lab_img = sitk.GetImageFromArray(lab)
            lab_img.CopyInformation(img)
            sitk.WriteImage(lab_img, str(root / split / case / "seg.nii.gz"))
    return root


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


def test_nifti_images_only_by_pattern(tmp_path, cli):
    src = nested(tmp_path / "src", {"p1": "train", "p2": "train", "p3": "val"})
    raw, idx = tmp_path / "raw", tmp_path / "idx" / "flair.jsonl"
    rc, err = cli("convert", "nifti", src, "--out-raw", raw, "--dataset-id", 7, "--sequence", "FLAIR",
                  "--pattern", "{split}/{id}/flair.nii.gz", "--index", idx)
    assert rc == 0, err
    folder = raw / "Dataset007_NIfTI_FLAIR"
    assert tree(folder) == ["dataset.json", "imagesTs", "imagesTs/FLAIRp1_0000.nii.gz",
                            "imagesTs/FLAIRp2_0000.nii.gz", "imagesTs/FLAIRp3_0000.nii.gz"]
    meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    assert meta["labels"] == {"background": 0} and meta["numTraining"] == 0 and meta["mrgen"]["images_only"]
    assert meta["mrgen"]["modality"] == "FLAIR Brain MRI" and meta["mrgen"]["kind"] == "volumes"
    out, geo = read_image(folder / "imagesTs" / "FLAIRp3_0000.nii.gz")
    ref, ref_geo = read_image(src / "val" / "p3" / "flair.nii.gz")
    assert np.array_equal(out, ref) and out.dtype == np.float32 and geo == ref_geo  # true geometry, same voxels
    recs = read_index(idx)
    assert len(recs) == 3 * 4 and all(r.label_file is None and r.organs == [] and r.labels == {} for r in recs)
    assert [r.slice_index for r in recs[:4]] == [0, 1, 2, 3] and recs[0].patient_id == "FLAIR/p1"
    assert recs[0].modality == "FLAIR Brain MRI" and recs[0].region == "Brain Region"
    assert Path(recs[0].image_file) == (folder / "imagesTs" / "FLAIRp1_0000.nii.gz").resolve()

    # --images-only explicitly, as 2D slices, with a {sequence} field selecting FLAIR among t1c/flair/seg
    rc, err = cli("convert", "nifti", src, "--out-raw", raw, "--dataset-id", 8, "--sequence", "T2-FLAIR",
                  "--pattern", "**/{id}/{sequence}.nii.gz", "--images-only", "--as-slices")
    assert rc == 0, err
    cases = sorted(p.name for p in (raw / "Dataset008_NIfTI_T2FLAIR" / "imagesTs").iterdir())
    assert len(cases) == 12 and cases[0] == "T2FLAIRp1_z000_0000.nii.gz"
    sl, sl_geo = read_image(raw / "Dataset008_NIfTI_T2FLAIR" / "imagesTs" / "T2FLAIRp2_z003_0000.nii.gz")
    assert np.array_equal(sl, read_image(src / "train" / "p2" / "flair.nii.gz")[0][3])
    assert np.allclose(sl_geo.spacing, (0.9, 0.8))


def test_nifti_labelled_by_pattern_bids_and_sequence_field(tmp_path, cli):
    src = nested(tmp_path / "src", {"p1": "train", "p2": "test"})
    raw = tmp_path / "raw"
    rc, err = cli("convert", "nifti", src, "--out-raw", raw, "--dataset-id", 9, "--sequence", "T1c",
                  "--labels", "tumour=1,oedema=2", "--pattern", "{split}/{id}/{sequence}.nii.gz",
                  "--label-pattern", "{split}/{id}/seg.nii.gz", "--as-slices", "--index", tmp_path / "t1c.jsonl")
    assert rc == 0, err
    folder = raw / "Dataset009_NIfTI_T1c"
    assert list_cases(folder)[:3] == ["T1cp1_z001", "T1cp1_z002", "T1cp1_z003"]  # slice 0 has no foreground
    recs = read_index(tmp_path / "t1c.jsonl")
    assert all(r.label_file and r.modality == "T1 C+ Brain MRI" for r in recs) and recs[0].organs == ["tumour", "oedema"]

    bids = tmp_path / "bids"
    for k in (1, 2):
        write(np.full((2, 8, 8), 5.0 * k), bids / f"sub-{k:02d}" / "anat" / f"sub-{k:02d}_FLAIR.nii.gz")
    write(np.zeros((2, 8, 8)), bids / "sub-03" / "anat" / "sub-03_T1w.nii.gz")
    rc, err = cli("convert", "nifti", bids, "--out-raw", raw, "--dataset-id", 10, "--sequence", "FLAIR",
                  "--pattern", "sub-{id}/anat/sub-{id}_FLAIR.nii.gz", "--index", tmp_path / "bids.jsonl")
    assert rc == 0, err
    assert list_cases(raw / "Dataset010_NIfTI_FLAIR", "Ts") == ["FLAIR001", "FLAIR002"]


def _fails(cli, args, needle, *untouched: Path):
    rc, err = cli(*args)
    assert rc != 0 and len(err) == 1 and needle in err[0], err
    for p in untouched:
        assert not p.exists(), p


@pytest.mark.parametrize("case", ["nothing", "clash", "mixed", "both", "no_sequence_match", "unknown_sequence"])
def test_nifti_bad_inputs_write_nothing(tmp_path, cli, case):
    src = nested(tmp_path / "src", {"p1": "train", "p2": "train", "p3": "val"})
    raw, idx = tmp_path / "raw", tmp_path / "i.jsonl"
    base = ["convert", "nifti", src, "--out-raw", raw, "--dataset-id", 5, "--index", idx]
    if case == "nothing":
        _fails(cli, [*base, "--sequence", "FLAIR", "--pattern", "{split}/{id}/t2.nii.gz"],
               "no file matches '{split}/{id}/t2.nii.gz'", raw, idx)
    elif case == "clash":
        nested(tmp_path / "src", {"p1": "val"})
        _fails(cli, [*base, "--sequence", "FLAIR", "--pattern", "{split}/{id}/flair.nii.gz"],
               "case id 'p1' matches two files", raw, idx)
    elif case == "mixed":
        (src / "val" / "p3" / "seg.nii.gz").unlink()
        _fails(cli, [*base, "--sequence", "T1c", "--labels", "a=1,b=2", "--pattern", "{split}/{id}/t1c.nii.gz",
                     "--label-pattern", "{split}/{id}/seg.nii.gz"], "1 of 3 images have no label", raw, idx)
    elif case == "both":
        _fails(cli, [*base, "--sequence", "T1c", "--labels", "a=1,b=2", "--images-only",
                     "--pattern", "{split}/{id}/t1c.nii.gz"], "--images-only takes no label map", raw, idx)
    elif case == "no_sequence_match":
        _fails(cli, [*base, "--sequence", "DWI", "--pattern", "{split}/{id}/{sequence}.nii.gz"],
               "found: flair, seg, t1c", raw, idx)
    else:
        _fails(cli, [*base, "--sequence", "PET-CT", "--pattern", "{split}/{id}/flair.nii.gz"],
               "unknown modality 'PET-CT' (--sequence)", raw, idx)


def test_nnunet_imagests_unlabelled_imagestr_and_partial_labels(tmp_path, cli):
    src = nested(tmp_path / "src", {"p1": "train", "p2": "train"})
    raw = tmp_path / "raw"
    rc, err = cli("convert", "nifti", src, "--out-raw", raw, "--dataset-id", 11, "--sequence", "FLAIR",
                  "--pattern", "{split}/{id}/flair.nii.gz")
    assert rc == 0, err
    folder = raw / "Dataset011_NIfTI_FLAIR"
    rc, err = cli("convert", "nnunet", folder, "--subset", "Ts")
    assert rc == 0, err
    recs = read_index(folder / "mrgen_index_Ts.jsonl")
    assert len(recs) == 8 and all(r.label_file is None and not r.organs for r in recs)
    assert recs[0].modality == "FLAIR Brain MRI" and recs[0].patient_id == "FLAIR/p1"

    rc, err = cli("convert", "nifti", src, "--out-raw", raw, "--dataset-id", 12, "--sequence", "T1c",
                  "--labels", "a=1,b=2", "--pattern", "{split}/{id}/t1c.nii.gz",
                  "--label-pattern", "{split}/{id}/seg.nii.gz")
    assert rc == 0, err
    lab = raw / "Dataset012_NIfTI_T1c"
    rc, err = cli("convert", "nnunet", lab, "--images-only", "--index", tmp_path / "strip.jsonl")
    assert rc == 0, err
    recs = read_index(tmp_path / "strip.jsonl")
    assert len(recs) == 8 and all(r.label_file is None and r.labels == {} for r in recs)  # every slice, no labels
    (lab / "labelsTr" / "T1cp2.nii.gz").unlink()
    _fails(cli, ["convert", "nnunet", lab, "--index", tmp_path / "mixed.jsonl"],
           "1 of 2 imagesTr cases have no label", tmp_path / "mixed.jsonl")
    for p in (lab / "labelsTr").iterdir():
        p.unlink()
    rc, err = cli("convert", "nnunet", lab, "--index", tmp_path / "unlab.jsonl")
    assert rc == 0, err
    assert all(r.label_file is None for r in read_index(tmp_path / "unlab.jsonl"))


def test_dicom_series_folders(tmp_path, cli):
    rng = np.random.default_rng(5)
    vols = {k: (rng.random((3, 12, 10)) * 4000 - 1000).astype(np.int16) for k in ("7", "12")}
    for k, vol in vols.items():
        dicom_series(tmp_path / "scans" / "site-a" / k / "FLAIR", vol, spacing=(0.7, 0.6), thickness=4.0)
    raw, idx = tmp_path / "raw", tmp_path / "dcm.jsonl"
    rc, err = cli("convert", "dicom", tmp_path / "scans", "--out-raw", raw, "--dataset-id", 13, "--sequence",
                  "FLAIR", "--pattern", "*/{id}/FLAIR", "--index", idx)
    assert rc == 0, err
    folder = raw / "Dataset013_DICOM_FLAIR"
    assert list_cases(folder, "Ts") == ["FLAIR007", "FLAIR012"]
    img, geo = read_image(folder / "imagesTs" / "FLAIR012_0000.nii.gz")
    assert np.array_equal(img, vols["12"]) and img.min() < 0  # int16 with negatives, kept exactly
    assert np.allclose(geo.spacing, (0.7, 0.6, 4.0))
    recs = read_index(idx)
    assert len(recs) == 6 and all(r.label_file is None for r in recs) and recs[0].spacing == pytest.approx([0.7, 0.6])

    # two series in one case folder; a case folder without DICOM files: one line, nothing written
    second = tmp_path / "two" / "1"
    dicom_series(second, vols["7"])
    for f in dicom_series(tmp_path / "other", vols["12"]):
        data = f.read_bytes().replace(b"1.2.826.0.1.3680043.2.1125.1", b"1.2.826.0.1.3680043.2.1125.9")
        (second / ("B" + f.name)).write_bytes(data)
    _fails(cli, ["convert", "dicom", tmp_path / "two", "--out-raw", tmp_path / "raw2", "--dataset-id", 14,
                 "--sequence", "FLAIR", "--index", tmp_path / "two.jsonl"], "holds 2 DICOM series",
           tmp_path / "raw2" / "Dataset014_DICOM_FLAIR", tmp_path / "two.jsonl")
    (tmp_path / "empty" / "1").mkdir(parents=True)
    _fails(cli, ["convert", "dicom", tmp_path / "empty", "--out-raw", tmp_path / "raw3", "--dataset-id", 15,
                 "--sequence", "FLAIR"], "no DICOM series", tmp_path / "raw3" / "Dataset015_DICOM_FLAIR")


@pytest.mark.parametrize("kind", ["zscored", "uint16", "ct"])
def test_unusual_intensities_convert_and_normalise(tmp_path, cli, kind):
    """Conversion keeps voxel values exactly (float32); the generator's per-slice min-max maps any range onto
    [-1, 1] and back (nnU-Net normalises per case on its own: z-score, or CT statistics for a 'CT' channel)."""
    from mrgen_nnunet.data.normalize import denormalize_slice, normalize_slice
    from mrgen_nnunet.generator.dataset import load_slice_set

    rng = np.random.default_rng(1)
    volume = {"zscored": rng.standard_normal((3, 16, 16)).astype(np.float32),
              "uint16": rng.integers(0, 65535, (3, 16, 16)).astype(np.uint16),
              "ct": rng.integers(-1024, 3071, (3, 16, 16)).astype(np.int16)}[kind]
    write(volume, tmp_path / "src" / "c1" / "img.nii.gz")
    write(blob_label(volume.shape, 1, rng), tmp_path / "src" / "c1" / "lab.nii.gz")
    raw = tmp_path / "raw"
    rc, err = cli("convert", "nifti", tmp_path / "src", "--out-raw", raw, "--dataset-id", 3, "--sequence", "CT",
                  "--labels", "organ=1", "--pattern", "{id}/img.nii.gz", "--label-pattern", "{id}/lab.nii.gz",
                  "--all-slices", "--index", tmp_path / "i.jsonl")
    assert rc == 0, err
    out, _ = read_image(raw / "Dataset003_NIfTI_CT" / "imagesTr" / "CTc1_0000.nii.gz")
    assert out.dtype == np.float32 and np.array_equal(out, volume.astype(np.float32))
    data = load_slice_set(tmp_path / "i.jsonl", 16, quiet=True)
    per_slice = data.images.reshape(3, -1)  # each slice spans [-1, 1] whatever its range
    assert np.all(per_slice.min(axis=1) == -1.0) and np.all(per_slice.max(axis=1) == 1.0)
    x, info = normalize_slice(out[1], 16)
    assert np.allclose(denormalize_slice(x, info), out[1], atol=1e-3 * float(np.ptp(out[1])))


def test_label_less_records_are_refused_as_synthesis_sources(tmp_path, cli):
    from mrgen_nnunet.synthesis.manifest import load_sources

    src = nested(tmp_path / "src", {"p1": "train"})
    raw = tmp_path / "raw"
    assert cli("convert", "nifti", src, "--out-raw", raw, "--dataset-id", 21, "--sequence", "T1c", "--labels",
               "a=1,b=2", "--pattern", "{split}/{id}/t1c.nii.gz", "--label-pattern", "{split}/{id}/seg.nii.gz",
               "--as-slices", "--index", tmp_path / "t1c.jsonl")[0] == 0
    assert cli("convert", "nifti", src, "--out-raw", raw, "--dataset-id", 22, "--sequence", "FLAIR",
               "--pattern", "{split}/{id}/flair.nii.gz", "--index", tmp_path / "flair.jsonl")[0] == 0
    assert len(load_sources(tmp_path / "t1c.jsonl", None).slices) == 3
    mixed = tmp_path / "generator.jsonl"
    mixed.write_text((tmp_path / "t1c.jsonl").read_text() + (tmp_path / "flair.jsonl").read_text())
    for index in (mixed, tmp_path / "flair.jsonl"):
        with pytest.raises(MRGenError, match="label-less record") as exc:
            load_sources(index, None)
        assert "FLAIRp1 slice 0" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(MRGenError, match="no organ labels"):
        load_sources(raw / "Dataset022_NIfTI_FLAIR", None)
