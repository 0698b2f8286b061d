"""The Markdown report, rendered from results files alone (no Optuna import, no scenario run).

``verdicts.py`` decides what the measurements say, as plain records; ``render.py`` turns those
records into Markdown with the shapes of ``markdown.py``; ``chart.py`` draws the PNG. Same JSON
in, same bytes out.

``report.md`` is the summary and the short sections, small enough to paste into a GitHub issue
or comment; the long tables go into files of their own beside it (``FILES``), each of which
fits one too. The timeline's own file, ``timeline.md``, is rendered by ``repro.timeline``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from repro import remedies, results
from repro.corpus import report as corpus_report
from repro.jsonfile import write_atomic
from repro.report import fix as candidate_fix
from repro.report import readme
from repro.report import render as _render
from repro.report.chart import CHART_NAME
from repro.report.render import CORPUS, DETAILS, SCRIPTS
from repro.report.verdicts import decide
from repro.results import ResultsFile
from repro.rolling import section as rolling_section
from repro.rolling.records import FILENAME as ROLLING
from repro.timeline import render as timeline_report

__all__ = ["CHART_NAME", "FILES", "REPORT", "SCRIPTS", "render", "render_dir", "write_dir"]

REPORT = "report.md"
# Every file ``render_files`` returns, report.md first.
FILES = (REPORT, DETAILS, CORPUS)


def render_files(
    results_dir: Path,
    skipped: list[str] | None = None,
    files: Sequence[ResultsFile] | None = None,
    chart: bool | None = None,
) -> dict[str, str]:
    """The files of ``FILES`` that have something to say, by name, for everything measured
    in ``results_dir``: the per-version JSON files and, when present, the release timeline,
    the corpus (``corpus.md`` only when the folder has a corpus and corpus runs) and the
    candidate fix's targets (``target-*/``). With ``skipped``, unreadable results files are
    left out and named there (see ``results.load_all``). ``files``: the per-version files of
    ``results_dir`` if the caller has loaded them already. ``chart``: whether the chart is
    beside the report (default: whether it is in ``results_dir``)."""
    if files is None:
        files = results.load_all(results_dir, skipped)
    if chart is None:
        chart = (results_dir / CHART_NAME).exists()
    found = decide(files)
    fix = candidate_fix.decide(results_dir)
    corpus_path = results_dir / "corpus.json"
    # Judged once for both files: the tallies are most of the report's time.
    corpus = corpus_report.measured(files, corpus_path)
    has_corpus = not isinstance(corpus, str)
    out = {
        REPORT: _render.report(
            found,
            timeline_report.summary_section(results_dir),
            corpus_report.summary_section(files, corpus_path, corpus) if has_corpus else [],
            fix,
            _rolling(results_dir),
            chart=chart,
            corpus_file=has_corpus,
        ),
        DETAILS: _render.details(found, fix, remedies.render_what_works(files)),
    }
    if has_corpus:
        out[CORPUS] = _render.corpus(
            found, corpus_report.render_section(files, corpus_path, corpus)
        )
    return out


def _rolling(results_dir: Path) -> list[str]:
    path = results_dir / ROLLING
    return rolling_section.section_from_json(path) if path.exists() else []


def render_dir(results_dir: Path) -> str:
    """``report.md`` alone."""
    return render_files(results_dir)[REPORT]


def write_dir(
    results_dir: Path,
    report_path: Path | None = None,
    skipped: list[str] | None = None,
    files: Sequence[ResultsFile] | None = None,
) -> list[Path]:
    """Write every rendered file: ``report.md`` at ``report_path`` (default: in
    ``results_dir``), the others beside it; a file of ``FILES`` with nothing to say (no
    corpus) is removed there, so that no stale one is left beside a report that does not name
    it. Returns the paths written. ``files`` as for ``render_files``; the chart is named when
    it is beside ``report_path`` (the caller draws it first)."""
    report_path = report_path or results_dir / REPORT
    written = []
    rendered = render_files(
        results_dir, skipped, files, chart=(report_path.parent / CHART_NAME).exists()
    )
    for name in FILES:
        path = report_path if name == REPORT else report_path.parent / name
        if name not in rendered:
            path.unlink(missing_ok=True)
            continue
        write_atomic(path, rendered[name])
        written.append(path)
    return written


def readme_block(files: Sequence[ResultsFile]) -> list[str]:
    """The README's findings block for ``files`` (see ``repro.report.readme``)."""
    return _render.readme_block(decide(files))


def update_readme(report_path: Path, files: Sequence[ResultsFile]) -> Path | None:
    """Rewrite this checkout's README block when ``report_path`` is its ``results/report.md``."""
    return readme.update(report_path, readme_block(files))


def render(
    files: Sequence[ResultsFile],
    timeline_section: Sequence[str] = (),
    corpus_section: Sequence[str] = (),
) -> str:
    """``report.md`` for ``files``, with the timeline and corpus sections given (in short)."""
    return _render.report(decide(files), timeline_section, corpus_section)
