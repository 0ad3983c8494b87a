import json

import pytest

from mrgen_nnunet.data.prompts import build_prompt, load_modality_table, resolve_modality
from mrgen_nnunet.errors import MRGenError


@pytest.mark.parametrize("name,key", [
    ("T2-SPIR", "T2 SPIR Abdomen MRI"), ("t2 spir", "T2 SPIR Abdomen MRI"),
    ("T1-InPhase", "T1 in-phase Abdomen MRI"), ("T1-OutofPhase", "T1 out-of-phase Abdomen MRI"),
    ("T2", "T2 Abdomen MRI"), ("ADC", "ADC Abdomen MRI"), ("bSSFP", "bSSFP Cardiac MRI"),
    ("LGE", "LGE Cardiac MRI"), ("LGE Cardiac MRI", "LGE Cardiac MRI"),
])
def test_aliases_resolve(name, key):
    assert resolve_modality(name).key == key


def test_chaos_phrase_matches_mrgen_release():
    info = resolve_modality("T2-SPIR")
    assert info.attributes == "fat low signal, muscle low signal, water high signal, fat dark, water bright"
    assert info.region == "Upper Abdominal Region"


def test_unknown_lists_known_keys_names_the_option_and_shows_the_format():
    with pytest.raises(MRGenError) as exc:
        resolve_modality("PET-CT", option="--sequence")
    msg = str(exc.value)
    assert "LGE Cardiac MRI" in msg and "FLAIR Brain MRI" in msg and "'PET-CT'" in msg and "\n" not in msg
    assert exc.value.where == "--sequence" and "--target" not in msg
    assert '{"modalities": {"PET-CT": {"attributes": ' in msg
    with pytest.raises(MRGenError) as exc:
        resolve_modality("PET-CT")
    assert exc.value.where == "--target"


@pytest.mark.parametrize("name,key", [
    ("T1c", "T1 C+ Brain MRI"), ("T1ce", "T1 C+ Brain MRI"), ("t1gd", "T1 C+ Brain MRI"),
    ("FLAIR", "FLAIR Brain MRI"), ("T2-FLAIR", "FLAIR Brain MRI"), ("T1w", "T1 Brain MRI"),
    ("T2 brain", "T2 Brain MRI"), ("T2w", "T2 Abdomen MRI"), ("DWI", "DWI Abdomen MRI"),
    ("ADC brain", "ADC Brain MRI"), ("HBV", "DWI Prostate MRI"), ("t2w prostate", "T2 Prostate MRI"),
    ("PD fat sat", "PD fat sat Knee MRI"), ("DESS", "DESS Knee MRI"), ("CT", "Abdomen CT"),
])
def test_brain_prostate_msk_aliases(name, key):
    assert resolve_modality(name).key == key


def test_builtin_table_holds_mrgen_release_verbatim():
    from mrgen_nnunet.data.prompts import MRGEN_TABLE

    assert MRGEN_TABLE.stat().st_size < 2_000_000
    assert "MIT License" in (MRGEN_TABLE.parent / "LICENSE.MRGen").read_text(encoding="utf-8")
    mrgen = json.loads(MRGEN_TABLE.read_text(encoding="utf-8"))
    table = load_modality_table()
    assert len(mrgen) == 305 and set(mrgen) <= set(table)
    assert all(table[k]["attributes"] == v for k, v in mrgen.items())  # curated entries keep MRGen's phrases
    # keys equal up to case/spacing in MRGen's file resolve to themselves, not to their first look-alike
    assert resolve_modality("T2 haste Abdomen MRI").key == "T2 haste Abdomen MRI"
    names = {}
    for key, entry in table.items():  # no alias of ours names two keys
        for alias in entry["aliases"]:
            assert names.setdefault(alias.lower().replace(" ", "").replace("-", ""), key) == key, alias


def test_prompt_template_drops_empty_parts():
    info = resolve_modality("T2-SPIR")
    p = build_prompt(info.key, info.attributes, info.region, ["liver", "spleen"])
    assert p == ("T2 SPIR Abdomen MRI, fat low signal, muscle low signal, water high signal, fat dark, "
                 "water bright, Upper Abdominal Region, liver, spleen")
    assert build_prompt("LGE Cardiac MRI", "", "", []) == "LGE Cardiac MRI"


def test_user_tables_flat_mrgen_and_toml(tmp_path):
    flat = tmp_path / "attrs.json"
    flat.write_text(json.dumps({"T1 Abdomen MRI": "fat high signal", "T2 SPIR Abdomen MRI": "custom phrase"}))
    table = load_modality_table(flat)
    assert resolve_modality("t1 abdomen mri", table).attributes == "fat high signal"
    spir = resolve_modality("T2-SPIR", flat)  # alias survives, region kept from built-in
    assert (spir.attributes, spir.region) == ("custom phrase", "Upper Abdominal Region")
    toml = tmp_path / "t.toml"
    toml.write_text('[modalities."FLAIR Brain MRI"]\nattributes = "csf dark"\nregion = "Brain"\naliases = ["FLAIR"]\n')
    assert resolve_modality("FLAIR", toml) == resolve_modality("FLAIR Brain MRI", toml)
    assert resolve_modality("FLAIR", toml).region == "Brain"


def test_bad_table_is_user_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(MRGenError, match="cannot parse"):
        load_modality_table(bad)
    with pytest.raises(MRGenError, match="not found"):
        load_modality_table(tmp_path / "missing.json")


def test_full_mrgen_table_loads(shared_data):
    path = shared_data.parent / "mrgen_reference" / "modality_attributes.json"
    if not path.is_file():
        pytest.skip("MRGen reference table absent")
    table = load_modality_table(path)
    assert len(table) >= 305
    assert resolve_modality("T1 C+ fat sat Abdomen MRI", table).attributes.startswith("fat low signal")
