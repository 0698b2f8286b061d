"""The report is rendered from the committed JSON alone, byte for byte, and every number in
its tables is in that JSON."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from repro import report, results

from .conftest import RESULTS, ROOT


def test_committed_report_is_regenerated_byte_for_byte() -> None:
    files = results.load_all(RESULTS)
    assert files, "no committed results"
    assert report.render(files) == (RESULTS / "report.md").read_text(encoding="utf-8")


def test_committed_results_cover_every_pinned_version_and_scenario() -> None:
    from repro.scenarios import matrix

    files = results.load_all(RESULTS)
    versions = [f.optuna_version for f in files]
    assert versions[:2] == ["3.2.0", "3.6.1"]
    assert len(versions) == 3
    for f in files:
        assert {r.scenario for r in f.runs} >= {s.id for s in matrix()}
        # Corpus runs may record Optuna's own crashes; tests/test_corpus.py covers them.
        assert not [r for r in f.errors if r.case_id is None]


def test_every_table_number_is_in_the_json() -> None:
    text = (RESULTS / "report.md").read_text(encoding="utf-8")
    numbers: set[str] = set()
    for path in RESULTS.glob("optuna-*.json"):
        data = json.loads(path.read_text())

        def collect(value: object) -> None:
            if isinstance(value, dict):
                for v in value.values():
                    collect(v)
            elif isinstance(value, list):
                for v in value:
                    collect(v)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                numbers.add(f"{value:g}")
            elif isinstance(value, str):
                numbers.update(re.findall(r"\d+(?:\.\d+)?", value))

        collect(data)
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= {"|", "-"}:
            continue
        for cell in line.split("|"):
            # Links carry line numbers of upstream source and #N names an upstream issue:
            # neither is a measurement.
            cell = re.sub(r"\(https?://[^)]*\)|#\d+", "", cell)
            for number in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", cell):
                assert f"{float(number):g}" in numbers or number in numbers, (number, line)


def test_report_does_not_need_optuna() -> None:
    code = "import sys, repro.report, repro.cli; print('optuna' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"
