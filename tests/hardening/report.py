"""Run the hardening tests and write the table of counts in docs/HARDENING.md (between the `counts` markers):

    OMP_NUM_THREADS=1 .venv/bin/python tests/hardening/report.py

Counts come from this run only: passed / failed / skipped per test file (JUnit XML), the bad-input matrix per
command, and the SIGKILLs the fault tests print (`<command>: faults injected N, survived M`).
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "HARDENING.md"
FILES = {  # file -> what it checks
    "tests/hardening/test_bad_input_matrix.py": "bad inputs through the CLI: one error line naming file/option, "
                                                "exit != 0, inputs and outputs unchanged, no staging debris",
    "tests/dataset_converters/test_bad_inputs.py": "converter bad inputs (corrupt files, labels, paths, JSON)",
    "tests/dataset_converters/test_mrgen_db_workers.py": "bad inputs read in mrgen-db pool workers",
    "tests/hardening/test_security.py": "one safe model loader, hostile pickles never run, no shell strings",
    "tests/hardening/test_fuzz.py": "hypothesis properties: path safety, parsers raise only MRGenError",
    "tests/hardening/test_faults.py": "SIGKILL at random moments, then resume: same output, no debris",
    "tests/hardening/test_process_group.py": "nnU-Net children die with the tool (process group)",
    "tests/hardening/test_determinism.py": "same seed, byte-identical dataset",
}
COMMANDS = {"c": "convert", "t": "train", "s": "synthesize", "e": "evaluate", "b": "benchmark", "g": "segment"}
BEGIN, END = "<!-- counts:begin (written by tests/hardening/report.py) -->", "<!-- counts:end -->"


def run() -> tuple[dict[str, Counter], Counter, list[tuple[str, int, int]]]:
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                               f"--junitxml={xml}", *FILES], cwd=REPO, capture_output=True, text=True)
        if not xml.is_file():
            sys.exit(done.stdout[-3000:] + done.stderr[-3000:])
        cases = list(ET.parse(xml).getroot().iter("testcase"))
    per_file: dict[str, Counter] = {f: Counter() for f in FILES}
    matrix: Counter = Counter()
    for case in cases:
        outcome = ("failed" if case.find("failure") is not None or case.find("error") is not None
                   else "skipped" if case.find("skipped") is not None else "passed")
        file = case.get("classname", "").replace(".", "/") + ".py"
        per_file[next((f for f in FILES if f == file), file)][outcome] += 1
        m = re.search(r"\[([a-z])_", case.get("name", ""))
        if file.endswith("test_bad_input_matrix.py") and m:
            matrix[(COMMANDS[m.group(1)], outcome)] += 1
    faults = [(c, int(i), int(s)) for c, i, s in
              re.findall(r"^(.+): faults injected (\d+), survived (\d+)$", done.stdout, re.M)]
    return per_file, matrix, faults


def table(per_file: dict[str, Counter], matrix: Counter, faults: list[tuple[str, int, int]]) -> str:
    rows = ["| test file | checks | passed | failed | skipped |", "|---|---|---|---|---|"]
    for f, c in per_file.items():
        rows.append(f"| `{f}` | {FILES.get(f, '')} | {c['passed']} | {c['failed']} | {c['skipped']} |")
    rows += ["", "| bad-input matrix: command | passed | failed | skipped |", "|---|---|---|---|"]
    for name in COMMANDS.values():
        rows.append(f"| {name} | {matrix[(name, 'passed')]} | {matrix[(name, 'failed')]} | "
                    f"{matrix[(name, 'skipped')]} |")
    bad = [per_file[f] for f in list(FILES)[:3]]
    rows += ["", f"Bad inputs tried: **{sum(sum(c.values()) for c in bad)}**, handled (passed): "
             f"**{sum(c['passed'] for c in bad)}**.", "", "| SIGKILL faults | injected | survived |", "|---|---|---|"]
    rows += [f"| {c} | {i} | {s} |" for c, i, s in faults] or ["| (none printed) | 0 | 0 |"]
    return "\n".join(rows)


def main() -> int:
    per_file, matrix, faults = run()
    text = DOC.read_text(encoding="utf-8")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(f"{head}{BEGIN}\n{table(per_file, matrix, faults)}\n{END}{tail}", encoding="utf-8")
    failed = sum(c["failed"] for c in per_file.values())
    print(f"wrote {DOC.relative_to(REPO)}: {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
