"""What the benchmark built, with the settings that made it: dataset ids and fingerprints in `<out>/ledger.json`.

Every stage output (converted data, generator, synthetic and randomised sets, merged rows, trained models with
their evaluation) has a key, e.g. `part:remap:seed1`, and an entry `{"id": dataset id or null, "fingerprint":
sha256 of its settings, "settings": ...}`. Dataset ids are handed out from `first_id` in order of first request
and kept forever in the file, so they are distinct and stable however many rows and seeds a run has. A stage
output is reused only when its recorded fingerprint equals the current one; otherwise it is rebuilt with `force`
or refused with a one-line error (never a silent reuse of data made with other settings).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path

from mrgen_nnunet.data.io import write_text_atomic
from mrgen_nnunet.data.nnunet_raw import datasets_with_id
from mrgen_nnunet.errors import MRGenError


def fingerprint(settings: dict) -> str:
    """16 hex digits of sha256 over the canonical JSON of `settings` (keys sorted, paths as strings)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class Ledger:
    def __init__(self, path: Path, first_id: int, raw: Path, force: bool = False):
        self.path, self.first_id, self.raw, self.force = Path(path), int(first_id), Path(raw), force
        self.entries: dict[str, dict] = {}
        if self.path.is_file():
            try:
                self.entries = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise MRGenError(f"unreadable ledger ({exc})", self.path, "delete the benchmark's out folder") from None
        self._lock = threading.Lock()

    def _save(self) -> None:
        write_text_atomic(json.dumps(self.entries, indent=1, sort_keys=True) + "\n", self.path)

    def dataset_id(self, key: str) -> int:
        """The id of `key`: the recorded one, else the lowest free id >= first_id (recorded at once)."""
        with self._lock:
            if key in self.entries and self.entries[key].get("id") is not None:
                return int(self.entries[key]["id"])
            used = {int(e["id"]) for e in self.entries.values() if e.get("id") is not None}
            new = self.first_id
            while new in used or datasets_with_id(self.raw, new):
                new += 1
            if new > 999:
                raise MRGenError("no free nnU-Net dataset id (<= 999) left", self.path,
                                 "set a lower first_dataset_id or use another out folder")
            self.entries[key] = {"id": new, "fingerprint": None, "settings": None}
            self._save()
            return new

    def reuse(self, key: str, settings: dict, exists: bool, remove: Callable[[], None]) -> bool:
        """True when the output of `key` exists and was made with `settings`. An existing output made with other
        (or unrecorded) settings is removed with `force` (then False: rebuild), else refused. Records `settings`
        as the ones the (re)built output will have."""
        fp = fingerprint(settings)
        with self._lock:
            entry = self.entries.setdefault(key, {"id": None, "fingerprint": None, "settings": None})
            if exists and entry["fingerprint"] == fp:
                return True
            if exists:
                if not self.force:
                    old = entry.get("settings")
                    changed = "unrecorded" if old is None else ", ".join(
                        sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k)))
                    raise MRGenError(f"'{key}' exists but was made with other settings (changed: {changed})",
                                     self.path,
                                     "rerun with --force to rebuild it, or give the benchmark another `out` folder")
                remove()
            entry["fingerprint"], entry["settings"] = fp, settings
            self._save()
            return False
