"""The report is rendered from the committed JSON alone, byte for byte, and every number in
its tables is in that JSON."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys

from repro import report, results

from .helpers import RESULTS, ROOT


def test_committed_report_is_regenerated_byte_for_byte() -> None:
    assert results.load_all(RESULTS), "no committed results"
    assert report.render_dir(RESULTS) == (RESULTS / "report.md").read_text(encoding="utf-8")


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
    for path in RESULTS.glob("*.json"):  # per-version files, timeline.json, corpus files
        data = json.loads(path.read_text())

        def collect(value: object) -> None:
            if isinstance(value, dict):
                for v in value.values():
                    collect(v)
            elif isinstance(value, list):
                for v in value:
                    collect(v)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                # The cell's sign is outside the number the pattern below extracts.
                numbers.update({f"{value:g}", f"{abs(value):g}", str(abs(value))})
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


def test_report_renders_as_github_markdown() -> None:
    """Every table block parses as a table, and the chart link is a PNG that fits a comment."""
    from markdown_it import MarkdownIt

    text = (RESULTS / "report.md").read_text(encoding="utf-8")
    html = MarkdownIt("commonmark").enable("table").render(text)
    separators = [line for line in text.splitlines() if re.fullmatch(r"\|(---\|)+", line)]
    assert separators
    assert html.count("<table>") == len(separators)
    images = re.findall(r'<img src="([^"]+)"', html)
    assert images == ["report-chart.png"]
    png = (RESULTS / images[0]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert 600 <= width <= 1000
    assert height < width
