"""Pure rules of nnUNetTrainerMRGen: patient-grouped real-only validation splits and real:synthetic sampling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.trainers.sampling import sampling_probabilities
from mrgen_nnunet.trainers.splits import cases_without_labels, patient_splits, validation_has_synthetic


def _dataset(n_patients, real_per, syn_per, syn_only_patients=0):
    patients, synthetic = {}, []
    for p in range(n_patients):
        for k in range(real_per):
            patients[f"P{p}_z{k}"] = f"src/{p}"
        for k in range(syn_per):
            patients[f"syn_P{p}_z{k}_k0"] = f"src/{p}"
            synthetic.append(f"syn_P{p}_z{k}_k0")
    for p in range(syn_only_patients):
        patients[f"syn_Q{p}_k0"] = f"other/{p}"
        synthetic.append(f"syn_Q{p}_k0")
    return sorted(patients), patients, synthetic


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 9), st.integers(1, 3), st.integers(0, 3), st.integers(0, 3))
def test_splits_are_patient_grouped_and_validate_on_real_only(n_patients, real_per, syn_per, syn_only):
    cases, patients, synthetic = _dataset(n_patients, real_per, syn_per, syn_only)
    splits = patient_splits(cases, patients, synthetic)
    assert len(splits) == min(5, n_patients)
    assert validation_has_synthetic(splits, synthetic) == []
    val_all = [c for s in splits for c in s["val"]]
    assert sorted(val_all) == sorted(c for c in cases if c not in synthetic)  # every real case validated once
    for s in splits:
        val_patients = {patients[c] for c in s["val"]}
        assert not val_patients & {patients[c] for c in s["train"]}  # no patient (nor its synthetic copy) in both
        assert set(s["train"]) >= {f"syn_Q{p}_k0" for p in range(syn_only)}  # synthetic-only patients always train


def test_synthetic_of_a_validation_patient_is_left_out_of_training():
    cases, patients, synthetic = _dataset(3, 2, 1)
    for s in patient_splits(cases, patients, synthetic):
        (val_patient,) = {patients[c] for c in s["val"]}
        assert all(patients[c] != val_patient for c in s["train"])
        assert len(s["train"]) == 2 * 3  # 2 patients x (2 real + 1 synthetic)


def test_synthetic_only_dataset_falls_back_to_synthetic_validation():
    cases, patients, synthetic = _dataset(4, 0, 2)
    splits = patient_splits(cases, patients, synthetic)
    assert len(splits) == 4 and all(s["val"] and set(s["val"]) <= set(synthetic) for s in splits)


def test_missing_patient_and_single_patient_are_user_errors():
    with pytest.raises(MRGenError, match="no patient id"):
        patient_splits(["a", "b"], {"a": "1"}, [])
    with pytest.raises(MRGenError, match="only 1 patient"):
        patient_splits(["a", "b"], {"a": "1", "b": "1"}, [])


@pytest.mark.parametrize("ratio", [0.25, 1.0, 3.0])
def test_sampling_probabilities_follow_ratio_per_group(ratio):
    ids = [f"r{i}" for i in range(12)] + [f"s{i}" for i in range(4)]
    p = sampling_probabilities(ids, {f"s{i}" for i in range(4)}, ratio)
    assert p.shape == (16,) and p.sum() == pytest.approx(1.0)
    assert p[:12].sum() / p[12:].sum() == pytest.approx(ratio)
    assert np.allclose(p[:12], p[0]) and np.allclose(p[12:], p[12])
    draws = np.random.default_rng(0).choice(len(ids), 20000, p=p)
    assert (draws < 12).mean() == pytest.approx(ratio / (ratio + 1), abs=0.015)


def test_sampling_is_uniform_without_ratio_or_without_one_group():
    assert sampling_probabilities(["a", "b"], {"b"}, None) is None
    assert sampling_probabilities(["a", "b"], set(), 1.0) is None
    assert sampling_probabilities(["a", "b"], {"a", "b"}, 1.0) is None
    with pytest.raises(ValueError):
        sampling_probabilities(["a", "b"], {"b"}, 0.0)


def test_cases_without_labels_lists_the_missing_ground_truth(tmp_path):
    (tmp_path / "a.nii.gz").write_bytes(b"")
    assert cases_without_labels(["b", "a", "c"], tmp_path, ".nii.gz") == ["b", "c"]
    assert cases_without_labels(["a"], tmp_path, ".nii.gz") == []
