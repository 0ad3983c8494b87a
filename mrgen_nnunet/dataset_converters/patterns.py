"""Folder layouts by pattern, shared by every generic converter (`convert nifti`, `convert dicom`).

A pattern is a path relative to the source folder, `/`-separated:

* `*` any text inside one file or folder name, `?` one character, `**` (a whole segment) any number of folders,
  none included;
* `{name}` a named field: non-empty text inside one name. `{id}` is required and names the case; the same field
  twice must match the same text (`sub-{id}/anat/sub-{id}_FLAIR.nii.gz`). Other fields (`{split}`, `{sequence}`,
  anything) match like `*` and keep their value, e.g. to fill a label pattern or to select a sequence.

Hidden files and folders (a name starting with `.`, e.g. macOS `._x.nii.gz`) never match. Case ids must be unique
over the whole matched tree: `train/7/t1c.nii.gz` and `test/7/t1c.nii.gz` clash under `{split}/{id}/t1c.nii.gz`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mrgen_nnunet.errors import MRGenError

FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TOKEN = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}|\*|\?|[^{}*?]+|[{}]")


@dataclass(frozen=True)
class Match:
    """One matched file or folder and the values of the pattern's fields (`fields["id"]`, ...)."""

    path: Path
    fields: dict[str, str]

    @property
    def id(self) -> str:
        return self.fields["id"]


def fields_of(pattern: str) -> list[str]:
    """The field names of `pattern`, in order of first appearance."""
    return list(dict.fromkeys(FIELD.findall(pattern)))


def compile_pattern(pattern: str, option: str = "--pattern", need_id: bool = True) -> re.Pattern:
    """The regular expression a relative POSIX path must fully match (fields are named groups)."""
    example = "e.g. {split}/{id}/t1c.nii.gz or sub-{id}/anat/sub-{id}_FLAIR.nii.gz"
    if not pattern or pattern.startswith("/") or "\\" in pattern:
        raise MRGenError(f"pattern {pattern!r} must be a relative path with '/' separators", option, example)
    segments = pattern.split("/")
    if any(s in ("", ".", "..") for s in segments):
        raise MRGenError(f"pattern {pattern!r} has an empty, '.' or '..' part", option, example)
    if segments[-1] == "**":
        raise MRGenError(f"pattern {pattern!r} ends with '**'", option, "end it with a file or folder name, " + example)
    seen: set[str] = set()
    parts = []
    for seg in segments:
        if seg == "**":
            parts.append(r"(?:[^/]+/)*")
            continue
        if "**" in seg:
            raise MRGenError(f"'**' must be a whole path part in {pattern!r}", option, "write e.g. data/**/{id}.nii.gz")
        regex = ""
        for token in _TOKEN.findall(seg):
            if token in "{}":
                raise MRGenError(f"unbalanced or invalid '{{...}}' in pattern {pattern!r}", option,
                                 "fields are {name} with letters, digits and _, " + example)
            if token.startswith("{"):
                name = token[1:-1]
                regex += f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+?)"
                seen.add(name)
            elif token == "*":
                regex += "[^/]*"
            elif token == "?":
                regex += "[^/]"
            else:
                regex += re.escape(token)
        parts.append(regex + "/")
    if need_id and "id" not in seen:
        raise MRGenError(f"pattern {pattern!r} has no {{id}} field", option, example)
    return re.compile("".join(parts)[:-1])


def _glob(pattern: str) -> str:
    """The pathlib glob that finds every candidate of `pattern` (fields -> `*`, literal `[` escaped)."""
    return FIELD.sub("*", pattern.replace("[", "[[]"))


def match_paths(root: str | Path, pattern: str, option: str = "--pattern", folders: bool = False) -> list[Match]:
    """Files (folders with `folders`) under `root` matching `pattern`, sorted by path. Raises when none match."""
    root = Path(root)
    regex = compile_pattern(pattern, option)
    if not root.is_dir():
        raise MRGenError("source folder not found", root, "check the path")
    found = []
    for path in sorted(root.glob(_glob(pattern))):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") for part in rel.split("/")) or not (path.is_dir() if folders else path.is_file()):
            continue
        m = regex.fullmatch(rel)
        if m:
            found.append(Match(path, {k: v for k, v in m.groupdict().items() if v is not None}))
    if not found:
        raise MRGenError(f"no {'folder' if folders else 'file'} matches {pattern!r}", root,
                         f"check {option} against the folder layout (fields: {{id}}, {{split}}, ...; wildcards * **)")
    return found


def select(matches: list[Match], field: str, keep: Callable[[str], bool], option: str, where: object) -> list[Match]:
    """The matches whose `field` value passes `keep`; none left is an error listing the values seen."""
    kept = [m for m in matches if keep(m.fields[field])]
    if not kept:
        seen = sorted({m.fields[field] for m in matches})
        raise MRGenError(f"no matched file has the wanted {{{field}}} (found: {', '.join(seen)})", where,
                         f"check {option}")
    return kept


def safe_id(text: str) -> str:
    """A case id nnU-Net file names can carry: characters other than letters, digits and `-` become `-`; numbers
    are zero-padded to 3 digits (`7` -> `007`)."""
    if text.isdigit():
        return f"{int(text):03d}"
    return re.sub(r"[^A-Za-z0-9\-]", "-", text)


def unique_ids(matches: list[Match], option: str = "--pattern") -> dict[str, Match]:
    """{safe case id: match}; two files giving one id is an error naming both."""
    out: dict[str, Match] = {}
    for m in matches:
        key = safe_id(m.id)
        if key in out:
            raise MRGenError(f"case id {key!r} matches two files: {out[key].path} and {m.path}", option,
                             "make {id} unique across the tree (e.g. put {split} into the id) or narrow the pattern")
        out[key] = m
    return out


def fill(pattern: str, match: Match, root: str | Path, option: str = "--label-pattern") -> Path | None:
    """The one file `pattern` names for `match` (its fields filled in, wildcards globbed), or None if there is
    none. A field missing from the image pattern or several files matching is an error."""
    missing = [f for f in fields_of(pattern) if f not in match.fields]
    if missing:
        raise MRGenError(f"field(s) {', '.join('{' + f + '}' for f in missing)} of {pattern!r} are not in the "
                         "image pattern", option, "use only fields the image --pattern has")
    compile_pattern(pattern, option, need_id=False)
    text = FIELD.sub(lambda m: match.fields[m.group(1)], pattern)
    if not any(c in text for c in "*?"):
        path = Path(root) / text
        return path if path.is_file() else None
    hits = [p for p in sorted(Path(root).glob(text.replace("[", "[[]"))) if p.is_file()]
    if len(hits) > 1:
        raise MRGenError(f"{len(hits)} files match {text!r}: {hits[0].name}, {hits[1].name}", option,
                         "make the pattern name one file per case")
    return hits[0] if hits else None
