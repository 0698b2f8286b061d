"""The report is rendered from the committed JSON alone, byte for byte, and every number in
its tables is in that JSON; each of its files fits a GitHub issue or comment, and report.md
links to nothing a paste would break."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from repro import report, results
from repro.timeline.render import MARKDOWN_NAME as TIMELINE
from repro.upstream.upstream_docs import BODY_LIMIT

from .helpers import RESULTS, ROOT, link_targets, run_cli

# What a reader may paste or attach: the report's files and the timeline's, which it names.
PASTABLE = (*report.FILES, TIMELINE)
# The one site links may point to: upstream Optuna's sources, issues and pull requests.
UPSTREAM = "https://github.com/optuna/optuna/"


def committed(name: str) -> str:
    return (RESULTS / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", report.FILES)
def test_committed_report_is_regenerated_byte_for_byte(name: str) -> None:
    assert results.load_all(RESULTS), "no committed results"
    assert report.render_files(RESULTS)[name] == committed(name)


def test_report_command_writes_every_file_beside_the_report(tmp_path: Path) -> None:
    """`python -m repro report --out` puts the report where asked and its other files beside
    it, the same bytes as the committed ones."""
    done = run_cli("report", "--results", str(RESULTS), "--out", str(tmp_path / "report.md"))
    assert done.returncode == 0, done.stderr
    for name in report.FILES:
        assert (tmp_path / name).read_text(encoding="utf-8") == committed(name), name


@pytest.mark.parametrize("name", PASTABLE)
def test_each_file_fits_a_github_issue_or_comment(name: str) -> None:
    assert len(committed(name)) <= BODY_LIMIT


def test_summary_fits_one_screen() -> None:
    """Everything before the first fold: the verdict per version, the files, the SQLite
    table."""
    top = committed(report.REPORT).split("<details>", 1)[0]
    assert "## Summary" in top
    assert len(top.splitlines()) <= 50


@pytest.mark.parametrize("name", PASTABLE)
def test_links_only_to_upstream_optuna(name: str) -> None:
    """A pasted body resolves relative links against the issue's URL, so the files link only
    to upstream Optuna, absolutely; this project's files are named in text."""
    targets = link_targets(committed(name))
    assert [t for t in targets if not t.startswith(UPSTREAM)] == []
    if name == report.REPORT:
        assert targets, "expected links to upstream sources"


def test_report_names_the_files_it_leaves_out() -> None:
    text = committed(report.REPORT)
    for name in (*report.FILES[1:], TIMELINE, report.CHART_NAME):
        assert f"`{name}`" in text, name


def test_link_check_sees_relative_links_and_images() -> None:
    text = '[a](../README.md) ![c](report-chart.png) <a href="x.md">x</a>\n'
    assert link_targets(text) == ["../README.md", "report-chart.png", "x.md"]


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


@pytest.mark.parametrize("name", PASTABLE)
def test_every_table_number_is_in_the_json(name: str) -> None:
    text = committed(name)
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
    rows = [
        line for line in text.splitlines() if line.startswith("|") and not set(line) <= {"|", "-"}
    ]
    assert rows, "no table rows: the check would pass vacuously"
    for line in rows:
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


@pytest.mark.parametrize("name", report.FILES)
def test_report_renders_as_github_markdown(name: str) -> None:
    """Every table block parses as a table."""
    from markdown_it import MarkdownIt

    text = committed(name)
    html = MarkdownIt("commonmark").enable("table").render(text)
    separators = [line for line in text.splitlines() if re.fullmatch(r"\|(---\|)+", line)]
    assert separators
    assert html.count("<table>") == len(separators)


def test_chart_is_a_png_that_fits_a_comment() -> None:
    png = (RESULTS / report.CHART_NAME).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert 600 <= width <= 1000
    assert height < width


def test_markdown_helper_builds_tables_folds_and_code_spans_that_parse() -> None:
    """A code span holding a pipe and backticks stays one cell of a table inside a fold."""
    from markdown_it import MarkdownIt

    from repro.report import markdown as md

    cell = md.code("x|`y`")
    lines = md.details("<b>t</b>", [*md.table(["a", "b"], [["1", cell], ["2", ""]]), ""])
    assert lines[2:6] == ["| a | b |", "|---|---|", f"| 1 | {cell} |", "| 2 | |"]
    html = MarkdownIt("commonmark").enable("table").render("\n".join(lines))
    assert html.count("<td>") == 4
    assert "<code>x|`y`</code>" in html
    assert "<summary><b>t</b></summary>" in html


def test_verdicts_are_plain_data_decided_from_the_json() -> None:
    """What the report says per version is decided as frozen records without Markdown."""
    import dataclasses

    from repro.report.verdicts import AdviceChecked, Tally, VersionVerdict, decide

    found = decide(results.load_all(RESULTS))
    by_version = {v.version: v for v in found.versions}
    records: list[VersionVerdict | AdviceChecked] = [*found.versions, *found.advice]
    for record in records:
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.version = "0"  # type: ignore[misc]
        text = json.dumps(dataclasses.asdict(record))
        assert not re.search(r"`|\*\*|\|", text), text
    # #5489 as reported: 3.6.1 loses points without a seed; 3.2.0 and 5.0.0 do not.
    assert by_version["3.6.1"].upstream == Tally(2, 2)
    assert by_version["3.6.1"].what_to_do.seed_fix == "same-seed"
    assert by_version["3.6.1"].what_to_do.exact_elsewhere == ("3.2.0", "5.0.0")
    assert by_version["5.0.0"].what_to_do.seed_fix is None
    assert by_version["5.0.0"].what_to_do.avoid_per_worker_seeds
    assert by_version["3.2.0"].what_to_do.race_worse_with_shared_seed


def test_advice_follows_the_measurements() -> None:
    """The same version with every run clean gets no advice and passes every check."""
    import dataclasses

    from repro.report.verdicts import decide

    f = next(f for f in results.load_all(RESULTS) if f.optuna_version == "5.0.0")
    clean_runs = [
        dataclasses.replace(
            r, missing=0, duplicates=0, same_id_duplicates=0, colliding_id_duplicates=0
        )
        for r in f.runs
    ]
    clean = dataclasses.replace(f, runs=clean_runs)
    (verdict,) = decide([clean]).versions
    assert verdict.losing_pairs == 0
    assert not verdict.what_to_do.avoid_per_worker_seeds
    (advice,) = decide([clean]).advice
    assert advice.seed.verdict == "not-needed"
    assert advice.single_job.verdict == "not-needed"
    assert advice.with_duplicates == 0
    assert "Nothing: no run lost a point." in report.render([clean])


def test_why_the_versions_differ_is_told_by_the_records() -> None:
    """The report tells why from the upstream change records and the expectation rows, and a
    row that starts at a later release refers to the change released there instead of
    retelling it."""
    from repro import expectations
    from repro.timeline import changes as upstream_changes

    text = (RESULTS / "report.md").read_text(encoding="utf-8")
    why = text.split("<b>Why the versions differ</b>", 1)[1].split("</details>", 1)[0]
    changes = [c for c in upstream_changes.in_window("3.2.0", "5.0.0") if c.behavioural]
    assert [c.pull_request for c in changes] == [4918, 5490]
    summary = text.split("## Summary", 1)[1].split("<details>", 1)[0]
    for change in changes:
        assert f"- **{change.title}**: {change.summary}\n" in why
        assert change.title in summary
    for row in expectations.TABLE:
        if row.since == "3.2.0":
            assert row.why in why
            continue
        assert "PR #" not in row.why
        assert any(c.release == row.since and c.behavioural for c in upstream_changes.CHANGES)


def test_chart_bars_are_the_matrix_runs_only() -> None:
    """Corpus runs (other grids, own section) do not move the chart, as they do not move the
    tables; the bars are the tables' means."""
    import dataclasses

    from repro.report import chart
    from repro.report.verdicts import decide

    files = results.load_all(RESULTS)
    assert any(r.case_id is not None for f in files for r in f.runs), "no corpus runs to leave out"
    matrix = [dataclasses.replace(f, runs=[r for r in f.runs if r.case_id is None]) for f in files]
    bars = chart.bars(decide(files))
    assert bars == chart.bars(decide(matrix))
    # 3.6.1, sequential, no seed: 7, 7.5, 7.5, 7.5, 8 missing on the five storages (the table).
    assert bars["missing", "sequential", "3.6.1"][0] == 7.5
    assert bars["missing", "sequential", "3.2.0"] == [0, 0, 0]
