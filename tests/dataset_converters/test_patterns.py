"""The pattern language of the generic converters (patterns.py): wildcards, named fields, unique ids, labels."""

from pathlib import Path

import pytest

from mrgen_nnunet.dataset_converters.patterns import compile_pattern, fill, match_paths, safe_id, unique_ids
from mrgen_nnunet.errors import MRGenError


def touch(root: Path, *names: str) -> Path:
    for n in names:
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        (root / n).write_bytes(b"x")
    return root


def rel(matches, root):
    return [(m.path.relative_to(root).as_posix(), m.fields) for m in matches]


def test_split_id_fields_across_folders(tmp_path):
    touch(tmp_path, "train/p1/t1c.nii.gz", "train/p1/flair.nii.gz", "test/p9/t1c.nii.gz", "notes.txt",
          "train/.p2/t1c.nii.gz", "train/p3/._t1c.nii.gz")  # hidden files/folders never match
    got = rel(match_paths(tmp_path, "{split}/{id}/t1c.nii.gz"), tmp_path)
    assert got == [("test/p9/t1c.nii.gz", {"split": "test", "id": "p9"}),
                   ("train/p1/t1c.nii.gz", {"split": "train", "id": "p1"})]


def test_bids_repeated_field_and_double_star(tmp_path):
    touch(tmp_path, "sub-01/anat/sub-01_FLAIR.nii.gz", "sub-02/ses-1/anat/sub-02_FLAIR.nii.gz",
          "sub-03/anat/sub-04_FLAIR.nii.gz", "sub-05/anat/sub-05_T1w.nii.gz")
    bids = match_paths(tmp_path, "sub-{id}/anat/sub-{id}_FLAIR.nii.gz")
    assert [m.id for m in bids] == ["01"]  # sub-03 / sub-04 disagree: the repeated field must match the same text
    deep = match_paths(tmp_path, "sub-{id}/**/sub-{id}_FLAIR.nii.gz")
    assert [m.id for m in deep] == ["01", "02"]  # ** spans zero (sub-01/anat) or more (ses-1/anat) folders
    star = match_paths(tmp_path, "*/anat/sub-{id}_*.nii.gz")
    assert [m.id for m in star] == ["01", "04", "05"]
    seq = match_paths(tmp_path, "sub-{id}/anat/sub-{id}_{sequence}.nii.gz")
    assert [(m.id, m.fields["sequence"]) for m in seq] == [("01", "FLAIR"), ("05", "T1w")]


def test_folders_mode(tmp_path):
    touch(tmp_path, "a/x.dcm", "b/y.dcm", "c.txt")
    assert [m.id for m in match_paths(tmp_path, "{id}", folders=True)] == ["a", "b"]


def test_unique_ids_clash_names_both_files(tmp_path):
    touch(tmp_path, "train/7/t1c.nii.gz", "test/007/t1c.nii.gz", "train/a_b/t1c.nii.gz")
    matches = match_paths(tmp_path, "{split}/{id}/t1c.nii.gz")
    with pytest.raises(MRGenError) as exc:
        unique_ids(matches)
    msg = str(exc.value)
    assert "'007'" in msg and "test/007/t1c.nii.gz" in msg and "train/7/t1c.nii.gz" in msg and "\n" not in msg
    assert list(unique_ids(matches[1:])) == ["007", "a-b"]
    assert safe_id("12") == "012" and safe_id("sub 1.x") == "sub-1-x"


@pytest.mark.parametrize("pattern,needle", [
    ("t1c.nii.gz", "no {id}"), ("/abs/{id}.nii.gz", "relative"), ("a/../{id}.nii.gz", "'..'"),
    ("{id}/**", "ends with '**'"), ("a**/{id}.nii", "whole path part"), ("{id}/{bad-name}.nii", "unbalanced"),
    ("{id", "unbalanced"), ("a//{id}", "empty"),
])
def test_bad_patterns_are_one_line(pattern, needle):
    with pytest.raises(MRGenError, match="pattern|\\*\\*") as exc:
        compile_pattern(pattern)
    assert needle in str(exc.value) and exc.value.where == "--pattern"


def test_nothing_matches_is_an_error(tmp_path):
    touch(tmp_path, "a/t1.nii.gz")
    with pytest.raises(MRGenError, match="no file matches '{split}/{id}/t1c.nii.gz'"):
        match_paths(tmp_path, "{split}/{id}/t1c.nii.gz")
    with pytest.raises(MRGenError, match="source folder not found"):
        match_paths(tmp_path / "missing", "{id}.nii.gz")


def test_fill_label_pattern(tmp_path):
    touch(tmp_path, "train/p1/t1c.nii.gz", "train/p1/seg.nii.gz", "train/p2/t1c.nii.gz",
          "labels/p1_v2_seg.nii.gz", "labels/p3_a_seg.nii.gz", "labels/p3_b_seg.nii.gz")
    m1, m2 = match_paths(tmp_path, "{split}/{id}/t1c.nii.gz")
    assert fill("{split}/{id}/seg.nii.gz", m1, tmp_path) == tmp_path / "train/p1/seg.nii.gz"
    assert fill("{split}/{id}/seg.nii.gz", m2, tmp_path) is None
    assert fill("labels/{id}_*_seg.nii.gz", m1, tmp_path) == tmp_path / "labels/p1_v2_seg.nii.gz"
    with pytest.raises(MRGenError, match="{sequence}.*not in the image pattern"):
        fill("{id}/{sequence}.nii.gz", m1, tmp_path)
    touch(tmp_path, "train/p3/t1c.nii.gz")
    m3 = match_paths(tmp_path, "{split}/{id}/t1c.nii.gz")[2]
    with pytest.raises(MRGenError, match="2 files match"):
        fill("labels/{id}_*_seg.nii.gz", m3, tmp_path)
