"""Text conditions in MRGen's template and the modality table behind them.

Prompt: `"{modality}, {attributes}, {region}, {organ1}, {organ2}"` (empty parts dropped), e.g.
`"T2 SPIR Abdomen MRI, fat low signal, ..., Upper Abdominal Region, liver, spleen"`.

A modality table maps a modality key to its attribute phrase, region and aliases. The built-in one is MRGen's
released `modality_attributes.json` (305 abdominal keys, verbatim in `mrgen_modality_attributes.json`, MIT, see
`LICENSE.MRGen` next to it: prompts for MRGen's weights must use these keys) with `modalities.json` merged over it
(regions and aliases for the MRGen keys we use, cardiac, brain, prostate and musculoskeletal entries); a user table
(JSON or TOML) may be

* our format: `{"modalities": {KEY: {"attributes": str, "region": str, "aliases": [str]}}}`, or
* MRGen's flat `modality_attributes.json`: `{KEY: "attribute phrase"}` (regions then come from the built-in
  table when it knows the key, else are empty).

A user table is merged over the built-in one, so built-in aliases keep working.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import tomllib

from mrgen_nnunet.errors import MRGenError

BUILTIN_TABLE = Path(__file__).with_name("modalities.json")
MRGEN_TABLE = Path(__file__).with_name("mrgen_modality_attributes.json")  # MRGen release, MIT (LICENSE.MRGen)


@dataclass(frozen=True)
class ModalityInfo:
    """A resolved modality: its table key (the prompt's first part), attribute phrase and region."""

    key: str
    attributes: str
    region: str


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name).lower()


def _parse_table(raw: dict, where: object) -> dict[str, dict]:
    entries = raw.get("modalities", raw) if isinstance(raw, dict) else None
    if not isinstance(entries, dict):
        raise MRGenError("modality table must be a JSON/TOML object", where,
                         'use {"modalities": {KEY: {"attributes": ..., "region": ...}}} or MRGen\'s flat file')
    table = {}
    for key, value in entries.items():
        if key.startswith("_"):
            continue
        if isinstance(value, str):
            table[key] = {"attributes": value, "aliases": []}
        elif isinstance(value, dict) and isinstance(value.get("attributes", ""), str):
            table[key] = {"attributes": value.get("attributes", ""), "aliases": list(value.get("aliases", []))}
            if "region" in value:
                table[key]["region"] = str(value["region"])
        else:
            raise MRGenError(f"modality table entry {key!r} must be a string or an object with 'attributes'",
                             where, "fix the entry")
    return table


@lru_cache(maxsize=1)
def _builtin() -> dict[str, dict]:
    table = _parse_table(json.loads(MRGEN_TABLE.read_text(encoding="utf-8")), MRGEN_TABLE)
    for key, entry in _parse_table(json.loads(BUILTIN_TABLE.read_text(encoding="utf-8")), BUILTIN_TABLE).items():
        table[key] = table.get(key, {}) | entry
    for entry in table.values():
        entry.setdefault("region", "")
    return table


def load_modality_table(path: str | os.PathLike | None = None) -> dict[str, dict]:
    """The built-in table, with the JSON/TOML table at `path` (if given) merged over it.

    Returns {key: {"attributes": str, "region": str, "aliases": [str]}}.
    """
    table = {k: dict(v, aliases=list(v["aliases"])) for k, v in _builtin().items()}
    if path is None:
        return table
    path = Path(path)
    if not path.is_file():
        raise MRGenError("modality table not found", path, "pass an existing JSON or TOML file to --modality-table")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8")) if path.suffix == ".toml" else json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MRGenError(f"cannot parse modality table: {exc}", path, "fix the JSON/TOML syntax") from None
    for key, entry in _parse_table(raw, path).items():
        merged = table.get(key, {"region": "", "aliases": []}) | entry
        merged["aliases"] = sorted(set(table.get(key, {}).get("aliases", [])) | set(entry["aliases"]))
        table[key] = merged
    for entry in table.values():
        entry.setdefault("region", "")
    return table


def resolve_modality(name: str, table: dict[str, dict] | str | os.PathLike | None = None,
                     option: object = "--target") -> ModalityInfo:
    """`"T2-SPIR"`, `"LGE"`, `"bSSFP Cardiac MRI"`, ... -> ModalityInfo; matching ignores case, spaces, `-`, `_`.

    `table` is a loaded table, a path to one, or None for the built-in table. Unknown names raise MRGenError
    naming `option` (the option or file the name came from), the curated keys and the table format.
    """
    if table is None or isinstance(table, (str, os.PathLike)):
        table = load_modality_table(table)
    if name in table:  # MRGen's table has keys equal up to case/spacing ("T2 HASTE", "T2 haste"): exact first
        return ModalityInfo(name, table[name]["attributes"], table[name].get("region", ""))
    wanted = _norm(name)
    for key, entry in table.items():
        if _norm(key) == wanted:
            return ModalityInfo(key, entry["attributes"], entry.get("region", ""))
    for key, entry in table.items():
        if any(_norm(alias) == wanted for alias in entry.get("aliases", [])):
            return ModalityInfo(key, entry["attributes"], entry.get("region", ""))
    ours = [k for k, e in table.items() if e.get("aliases")]  # curated entries; MRGen's 305 keys have none
    listing = ", ".join(ours[:20]) + f", ... ({len(table)} keys)"
    aliases = ", ".join(a for k in ours for a in table[k]["aliases"][:2])
    fmt = json.dumps({"modalities": {name: {"attributes": "...", "region": "...", "aliases": ["..."]}}})
    raise MRGenError(f"unknown modality {name!r}", option,
                     f"known keys: {listing}; aliases: {aliases}; or add it with --modality-table FILE.json "
                     f"holding {fmt}")


def build_prompt(modality: str, attributes: str, region: str, organs: list[str] | tuple[str, ...]) -> str:
    """MRGen's prompt `"{modality}, {attributes}, {region}, {organ1}, {organ2}"`; empty parts are dropped."""
    parts = [modality, attributes, region, *organs]
    return ", ".join(p.strip() for p in parts if p and p.strip())
