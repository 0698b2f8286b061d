"""The Markdown report, rendered from results files alone (no Optuna import, no scenario run).

``verdicts.py`` decides what the measurements say, as plain records; ``render.py`` turns those
records into Markdown with the shapes of ``markdown.py``; ``chart.py`` draws the PNG. Same JSON
in, same bytes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from repro import results
from repro.corpus import report as corpus_report
from repro.report import render as _render
from repro.report.chart import CHART_NAME
from repro.report.render import SCRIPTS
from repro.report.verdicts import decide
from repro.results import ResultsFile
from repro.timeline import render as timeline_report

__all__ = ["CHART_NAME", "SCRIPTS", "render", "render_dir"]


def render_dir(results_dir: Path) -> str:
    """The report for everything measured in ``results_dir``: the per-version JSON files and,
    when present, the release timeline and the corpus."""
    files = results.load_all(results_dir)
    return render(
        files,
        timeline_report.render_section(results_dir),
        corpus_report.render_section(files, results_dir / "corpus.json"),
    )


def render(
    files: Sequence[ResultsFile],
    timeline_section: Sequence[str] = (),
    corpus_section: Sequence[str] = (),
) -> str:
    return _render.report(decide(files), timeline_section, corpus_section)
