"""The report's Markdown, from the records ``verdicts.decide`` returns: it formats, and decides
nothing. Same records in, same lines out: everything is sorted and nothing reads the clock."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

from repro import markdown as md
from repro import remedies
from repro.expectations import ALL_POLICIES, GRID, Expectation
from repro.report import render_fix
from repro.report.chart import CHART_NAME
from repro.report.fix import FixFindings, coverage_probability
from repro.report.verdicts import (
    AdviceChecked,
    Coverage,
    Examples,
    Findings,
    RowVerdict,
    SeedCheck,
    SingleJobCheck,
    Tally,
    WhatToDo,
)
from repro.results import ScenarioSummary
from repro.scenarios import ALL_STORAGES, DEFAULT_SPACE, MODES, UPSTREAM
from repro.timeline.render import MARKDOWN_NAME as TIMELINE

LEGEND = (
    "Each cell: **runs that lost grid points / runs** · mean missing points · mean duplicate "
    "evaluations, then the mean split of the duplicates: `id` = the same grid id evaluated "
    "again, `col` = different grid ids that mapped to the same values (workers disagreeing on "
    "the grid order). `✓` = no run lost or repeated a point; `✗` = some run lost points. "
    "Expected outcomes come from `repro/expectations.py`; a cell that contradicts its "
    "expectation is marked `‼`."
)

SCRIPTS = (
    ("lost_points_5489.py", "the #5489 pattern: workers without a seed, one after another"),
    ("lost_points_per_worker_seed.py", "workers with different seeds, one after another"),
)


# The files rendered beside report.md. The report names them rather than linking them: a
# report pasted into an issue resolves relative links against the URL, where they break.
DETAILS = "report-details.md"
CORPUS = "corpus.md"


def report(
    found: Findings,
    timeline_section: Sequence[str] = (),
    corpus_section: Sequence[str] = (),
    fix: FixFindings | None = None,
    rolling_section: Sequence[str] = (),
    chart: bool = False,
    corpus_file: bool = False,
) -> str:
    """``report.md``: the summary, the SQLite table, the short sections; ``timeline_section``
    and ``corpus_section`` are those parts in short, ``fix`` the candidate fix, if measured,
    ``rolling_section`` the rolling upgrades, if measured. ``chart`` and ``corpus_file``: the
    chart and ``corpus.md`` are written beside it (the report names only what is there)."""
    table_storage = _table_storage(found)
    out: list[str] = [
        _title(found),
        "",
        "Does `GridSampler` evaluate every grid point exactly once when several workers share "
        "one study (optuna/optuna#5489)? Measured with real worker processes on real storages "
        "by optuna-grid-repro; every number in this report and in the files it names is in "
        "the JSON files they are rendered from.",
        "",
        "## Summary",
        "",
        *md.table(
            [
                "Optuna",
                "#5489 pattern: runs that lost points",
                "(mode, seed policy) pairs that lost points",
                "what to do",
            ],
            (
                [
                    md.bold(v.version),
                    _tally(v.upstream) if v.upstream else "not run",
                    f"{v.losing_pairs} of {v.pairs}",
                    _what_to_do(v.what_to_do)
                    + _remedy_note(found, v.version)
                    + render_fix.summary_note(fix, v.version),
                ]
                for v in found.versions
            ),
        ),
        "",
        _pattern_line(found),
        "",
        f"Measured: {_measured(found)}.",
        "",
        "Rendered from the same JSON, next to this file (attach them when pasting it):",
        "",
    ]
    if chart:
        out.append(
            f"- {md.code(CHART_NAME)}: the mean missing and duplicate points per run, by version "
            f"and launch mode, pooled {_coverage_text(found.coverage)}."
        )
    out.append(
        f"- {md.code(DETAILS)}: every scenario on every storage measured, and the uncertainty "
        "over repetitions."
    )
    if corpus_file:
        out.append(
            f"- {md.code(CORPUS)}: the random search spaces, by launch mode, grid size and "
            "workers, the minimal failing spaces and every case."
        )
    if timeline_section:
        out.append(
            f"- {md.code(TIMELINE)}: every release measured, per scenario, and the source change "
            "behind each change of behaviour."
        )
    out += [
        "",
        f"## By launch mode and seed policy, on {md.code(table_storage)}"
        + (" as in #5489" if table_storage == UPSTREAM.storage else ""),
        "",
        f"Every storage: {md.code(DETAILS)}.",
        "",
    ]
    out += _scenario_table(found, table_storage)
    for section in (timeline_section, corpus_section, rolling_section):
        if section:
            # The heading becomes the fold's title; the fold already opens with a blank line.
            heading, *body = section
            out += _details(heading.lstrip("# "), body[1:] if body[:1] == [""] else body)
    if found.remedy_advice:
        out += _details("What works on your version (each remedy measured)", _remedies(found))
    out += _details("Advice checked against the measurements", _advice_checked(found))
    out += _details(
        "Expected behaviour (from the source) and whether it held",
        _expected_section(found.expectations),
    )
    out += _details("Why the versions differ", _why_section(found))
    if fix:
        out += _details(render_fix.TITLE, render_fix.section(fix, DETAILS))
    out += _details("Minimal reproductions", _scripts_section(found))
    out += _details("What was run, and on what", _setup_section(found))
    out += _faults_section(found)
    problems = [
        p
        for by_scenario in found.contradictions.values()
        for ps in by_scenario.values()
        for p in ps
    ]
    if problems:
        out += ["## Runs that contradict the expectation table", ""]
        out += [f"- {p}" for p in problems]
        out.append("")
    return _text(out)


def readme_block(found: Findings) -> list[str]:
    """The README's findings: per version the #5489 pattern and what to do, and what was
    measured; links are relative to the README, which sits beside ``results/``."""
    return [
        "",
        *md.table(
            ["Optuna", "#5489 pattern: runs that lost points", "what to do"],
            (
                [
                    md.bold(v.version),
                    _tally(v.upstream) if v.upstream else "not run",
                    _what_to_do(v.what_to_do)
                    + _remedy_note(found, v.version, "`results/report.md`"),
                ]
                for v in found.versions
            ),
        ),
        "",
        _pattern_line(found, more=""),
        "",
        f"Measured: {_measured(found)}. The whole report: [results/report.md](results/report.md).",
        "",
    ]


def details(found: Findings, fix: FixFindings | None = None, what_works: Sequence[str] = ()) -> str:
    """``report-details.md``: the long per-storage tables, the remedies per storage
    (``what_works``) and the candidate fix's tables."""
    fix_part = render_fix.details(fix, _fix_scenario_rows(fix), LEGEND) if fix else []
    return _text(
        [
            *_part_heading(found, "every scenario"),
            "## Results by scenario",
            "",
            *_scenario_table(found),
            "## Uncertainty over repetitions",
            "",
            *_uncertainty_table(found),
            *what_works,
            *fix_part,
        ]
    )


def _fix_scenario_rows(fix: FixFindings) -> list[list[str]]:
    """Every scenario any target ran, a cell per target, flagged against its own rows."""
    ids = list(dict.fromkeys(s.scenario for t in fix.targets for s in t.scenarios))
    rows = []
    for sid in ids:
        cells, label = [], sid
        for t in fix.targets:
            summary = next((s for s in t.scenarios if s.scenario == sid), None)
            if summary is None:
                cells.append("not run")
                continue
            label = _scenario_label(summary)
            cells.append(_cell(summary, any(sid == s for s, _ in t.contradicted)))
        rows.append([label, *cells])
    return rows


def corpus(found: Findings, corpus_section: Sequence[str]) -> str:
    """``corpus.md``: the whole corpus section."""
    return _text([*_part_heading(found, "random search spaces"), *corpus_section])


def _title(found: Findings) -> str:
    versions = ", ".join(v.version for v in found.versions)
    return f"# GridSampler with several workers on Optuna {versions}"


def _table_storage(found: Findings) -> str:
    """The summary's table is on SQLite as in #5489, or on the first storage measured."""
    storages = found.coverage.storages
    return UPSTREAM.storage if UPSTREAM.storage in storages or not storages else storages[0]


def _coverage_text(c: Coverage) -> str:
    """What a claim covers, e.g. "over every storage and launch mode", "on `sqlite`,
    sequential only"."""
    every_storage, every_mode = set(c.storages) == set(ALL_STORAGES), set(c.modes) == set(MODES)
    if every_storage and every_mode:
        return "over every storage and launch mode"
    storages = "every storage" if every_storage else ", ".join(md.code(s) for s in c.storages)
    if every_mode:
        modes = "every launch mode"
    elif len(c.modes) == 1:
        modes = f"{c.modes[0]} only"
    else:
        modes = " and ".join(c.modes)
    return f"on {storages}, {modes}"


def _pooled_over(c: Coverage) -> str:
    """Where pooled counts come from: "over every storage", "on `sqlite`" (the modes are
    the table's rows)."""
    if set(c.storages) == set(ALL_STORAGES):
        return "over every storage"
    return "on " + ", ".join(md.code(s) for s in c.storages)


def _numbers(values: Sequence[int]) -> str:
    return " or ".join(str(v) for v in values) if values else "no"


def _pattern_line(
    found: Findings, more: str = " Details, source lines and the other modes are below."
) -> str:
    """The #5489 pattern as these runs had it: their workers and grid, from the JSON."""
    grids = sorted({g for x in found.shapes for g in x.grid_sizes})
    return (
        f"The #5489 pattern: {_numbers(found.upstream_workers)} worker processes started one "
        "after another on one SQLite file, each building `GridSampler(search_space)` without a "
        f"seed and running its share of a {_numbers(grids)}-point grid, the study capped at the "
        f"grid size with `MaxTrialsCallback` as in the report.{_why_in_short(found)}{more}"
    )


def _measured(found: Findings) -> str:
    """How many matrix runs per version, with how many workers, on which storages and modes."""
    parts = []
    for x in found.shapes:
        grids = ", ".join(f"{g}-point" for g in x.grid_sizes)
        parts.append(
            f"Optuna {x.version}: {x.runs} GridSampler runs ({x.remedy_runs} more under the "
            f"remedies), {_numbers(x.workers)} workers, {grids} grid, "
            f"{_coverage_text(x.coverage)}"
        )
    return "; ".join(parts) or "nothing"


def _part_heading(found: Findings, what: str) -> list[str]:
    return [
        f"{_title(found)}: {what}",
        "",
        "Part of `report.md`, rendered from the same JSON; every number in its tables is in "
        "that JSON.",
        "",
    ]


def _text(lines: Sequence[str]) -> str:
    return "\n".join(lines).rstrip() + "\n"


def _details(title: str, body: list[str]) -> list[str]:
    return md.details(f"<b>{title}</b>", body)


def _tally(t: Tally) -> str:
    return f"{t.lost}/{t.runs}"


def _examples(e: Examples) -> str:
    return ", ".join(md.code(i) for i in e.run_ids) + (", ..." if e.more else "")


def _what_to_do(w: WhatToDo) -> str:
    advice = []
    if w.seed_fix:
        fix = {
            "same-seed": "pass the same `seed` to `GridSampler` in every worker",
            "upgrade": "upgrade",
        }[w.seed_fix]
        elsewhere = f" (or use {', '.join(w.exact_elsewhere)})" if w.exact_elsewhere else ""
        advice.append(fix + elsewhere)
    if w.avoid_per_worker_seeds:
        advice.append("never give workers different seeds")
    if w.same_id_race:
        text = "expect overlapping workers to pick the same grid id now and then"
        if w.race_worse_with_shared_seed:
            text += ", more often with a shared seed"
        advice.append(text + (f" (not on {', '.join(w.race_free_on)})" if w.race_free_on else ""))
    if not advice:
        return "Nothing: no run lost a point."
    text = "; ".join(advice)
    return text[0].upper() + text[1:] + "."


def _why_in_short(found: Findings) -> str:
    """The changes behind the differences, by name only: ``_why_section`` tells them."""
    if not found.changes:
        return ""
    return f" Why: {'; '.join(c.title for c in found.changes)}."


def _cell(s: ScenarioSummary, violated: bool) -> str:
    if s.runs == 0:
        return f"error ({s.errors} runs)"
    mark = "✗" if s.runs_with_missing else ("✓" if not s.runs_with_duplicates else "≈")
    sources = []
    if s.same_id_mean:
        sources.append(f"id {s.same_id_mean:g}")
    if s.colliding_id_mean:
        sources.append(f"col {s.colliding_id_mean:g}")
    detail = f" ({', '.join(sources)})" if sources else ""
    errors = f" +{s.errors} err" if s.errors else ""
    flag = " ‼" if violated else ""
    return (
        f"{mark} **{s.runs_with_missing}/{s.runs}** · {s.missing_mean:g} · "
        f"{s.duplicates_mean:g}{detail}{errors}{flag}"
    )


def _scenario_label(s: ScenarioSummary) -> str:
    return f"{s.mode} · {s.seed_policy} · {s.storage}"


def _scenario_table(found: Findings, storage: str | None = None) -> list[str]:
    """Every scenario, or the scenarios on ``storage``."""
    versions = [f.optuna_version for f in found.files]
    scenario_ids: list[str] = []
    for v in versions:
        for s in found.summaries[v]:
            if s.scenario not in scenario_ids and storage in (None, s.storage):
                scenario_ids.append(s.scenario)
    rows = []
    for sid in scenario_ids:
        cells = []
        label = sid
        for v in versions:
            summary = next((x for x in found.summaries[v] if x.scenario == sid), None)
            if summary is None:
                cells.append("not run")
                continue
            label = _scenario_label(summary)
            cells.append(_cell(summary, sid in found.contradictions[v]))
        rows.append([label, *cells])
    return [LEGEND, "", *md.table(["mode · seed policy · storage", *versions], rows), ""]


def _uncertainty_table(found: Findings) -> list[str]:
    rows = []
    for v, summaries in found.summaries.items():
        for s in summaries:
            if not s.runs:
                continue
            lo, hi = s.missing_share_wilson95
            rows.append(
                [
                    v,
                    _scenario_label(s),
                    str(s.runs),
                    f"{s.missing_mean:g} [{s.missing_ci95[0]:g}, {s.missing_ci95[1]:g}]",
                    f"{s.duplicates_mean:g} [{s.duplicates_ci95[0]:g}, {s.duplicates_ci95[1]:g}]",
                    f"{s.runs_with_missing}/{s.runs} [{lo:g}, {hi:g}]",
                ]
            )
    headers = [
        "Optuna",
        "scenario",
        "runs",
        "missing: mean [95% CI]",
        "duplicates: mean [95% CI]",
        "runs losing points [95% Wilson]",
    ]
    return [
        "Per version and scenario: the mean over repetitions with its 95% Student-t interval "
        "(clipped at 0; with few repetitions it is wide), and the share of repetitions that lost "
        "any point with its 95% Wilson interval.",
        "",
        *md.table(headers, rows),
        "",
    ]


def _seed_check(c: SeedCheck) -> str:
    if c.verdict == "same-seed-only":
        return (
            f"holds only when every worker passes the same seed: shared seed "
            f"{_tally(c.shared)}, a seed per worker {_tally(c.per_worker)} "
            f"(e.g. {_examples(c.examples)})"
        )
    if c.verdict == "does-not-hold":
        return (
            f"does not hold: with a shared seed {_tally(c.shared)} runs lost points "
            f"(e.g. {_examples(c.examples)}), without one {_tally(c.none)}"
        )
    return f"not needed: no seed policy lost points ({_tally(c.none)} without seed)"


def _single_job_check(c: SingleJobCheck, jobs: str) -> str:
    if c.verdict == "does-not-hold":
        return (
            f"does not hold: every worker ran `n_jobs=1` and {_tally(c.sequential_none)} "
            f"sequential runs without seed lost points (e.g. {_examples(c.examples)})"
        )
    if c.verdict == "within-one-process":
        return (
            f"holds within one process: `n_jobs={jobs}` lost points in {_tally(c.threads)} "
            f"runs, `n_jobs=1` workers one after another in {_tally(c.sequential_none)}"
        )
    return (
        f"not needed: `n_jobs={jobs}` lost points in {_tally(c.threads)} runs, "
        f"`n_jobs=1` sequential workers in {_tally(c.sequential_none)}"
    )


def _dedup_check(a: AdviceChecked) -> str:
    if not a.with_duplicates:
        return "nothing to deduplicate: no run had duplicates"
    return (
        f"does not hold: deduplicating leaves points never evaluated in "
        f"{a.still_missing}/{a.with_duplicates} runs that had duplicates"
    )


def _budget_check(a: AdviceChecked) -> str:
    return (
        f"not what happens under a capped budget: {a.over_grid}/{a.finished} GridSampler runs "
        "had more "
        f"trials than the grid; with `MaxTrialsCallback` at the grid size (as in #5489) "
        f"each duplicate costs a grid point instead ({a.still_missing} runs lost points)"
    )


# The advice as it is commonly given, and how one version's measurements answer it (the second
# argument: the workers of the runs, as `n_jobs` of the threads mode).
ADVICE: tuple[tuple[str, Callable[[AdviceChecked, str], str]], ...] = (
    (
        "1. Set an explicit seed in `GridSampler` to get 3.2.0's behaviour back",
        lambda a, _: _seed_check(a.seed),
    ),
    ("2. Use `n_jobs=1` to avoid the problem", lambda a, j: _single_job_check(a.single_job, j)),
    ("3. Deduplicate the results afterwards", lambda a, _: _dedup_check(a)),
    (
        "4. Expect slightly more trials than the grid size in distributed runs",
        lambda a, _: (
            f"{_budget_check(a)}. Uncapped, measured: {remedies.render_cells(a.more_trials)}"
        ),
    ),
    (
        "5. Use another sampler if grid search is not required (the `GridSampler` docstring "
        "names `BruteForceSampler`; or enqueue the grid)",
        lambda a, _: remedies.render_cells(a.other_sampler),
    ),
)


def _remedy_note(found: Findings, version: str, rest: str = "below") -> str:
    """The summary names only what was measured exact, each with where it was measured; the
    rest, with numbers, is ``rest`` (the fold below, or the report for the README)."""
    advice = next((a for a in found.remedy_advice if a.version == version), None)
    if advice is None:
        return ""
    if not advice.exact:
        return f" No remedy was measured exact (the numbers: {rest})."
    exact = "; ".join(
        f"{label} ({_coverage_text(found.remedy_coverage[version, label])})"
        for label in advice.exact
    )
    return f" Measured exact: {exact} (others: {rest})."


def _remedies(found: Findings) -> list[str]:
    """Per version, only the remedies measured exact named as fixes; the rest with numbers."""
    return [
        "Each remedy users are told about that these runs measured (`GridSampler`'s seed "
        "policies, `n_jobs` threads, `BruteForceSampler`, the grid enqueued and popped by "
        "`RandomSampler`, a 1.5x or 2x budget without the cap), pooled over the launch modes "
        "and storages it ran on; numbers are runs "
        f"that lost points / runs (Wilson 95%). Per storage: {md.code(DETAILS)}.",
        "",
        *(f"- **{a.version}**: {remedies.render_what_to_do(a)}" for a in found.remedy_advice),
        "",
    ]


def _advice_checked(found: Findings) -> list[str]:
    return [
        "Common advice, tested against these runs. `k/n` counts runs that lost grid points, "
        f"{_pooled_over(found.coverage)}; run ids name examples in the JSON.",
        "",
        *md.table(
            ["advice", *(a.version for a in found.advice)],
            (
                [title, *(cell(a, _numbers(_workers_of(found, a.version))) for a in found.advice)]
                for title, cell in ADVICE
            ),
        ),
        "",
    ]


def _workers_of(found: Findings, version: str) -> tuple[int, ...]:
    return next((x.workers for x in found.shapes if x.version == version), ())


def _releases(row: Expectation) -> str:
    return f"{row.since} ≤ v < {row.until}" if row.until else f"v ≥ {row.since}"


def _expected_section(verdicts: Sequence[RowVerdict]) -> list[str]:
    rows = []
    for v in verdicts:
        held = [f"held in every run on {', '.join(v.held_on)}"] if v.held_on else []
        broken = [f"{version}: contradicted by {', '.join(ids)}" for version, ids in v.contradicted]
        rows.append(
            [
                _releases(v.row),
                ", ".join(sorted(v.row.modes)),
                ", ".join(sorted(v.row.seed_policies)),
                v.row.outcome,
                "; ".join(held + broken) or "not measured",
            ]
        )
    return [
        *md.table(["releases", "modes", "seed policies", "expected", "measured"], rows),
        "",
        "Outcomes: `exact` = every point once in every run; `loses-points` = points "
        "missing in every run, duplicates only from colliding grid ids; `racy` = workers "
        "agree on the grid, but overlapping workers can pick the same grid id, so the "
        "rate is measured rather than promised.",
        "",
    ]


def _why_section(found: Findings) -> list[str]:
    """The expectation rows of the oldest version, then each behavioural upstream change after
    it: both texts are the records' own, told nowhere else."""
    out = [
        f"Read from `{GRID}` at each release's tag: what the oldest version measured does (its "
        "rows of the expectation table), then each change between the versions measured that "
        "can change which point a trial evaluates.",
        "",
    ]
    if found.baseline:
        oldest = found.versions[0].version
        parts = [f"{_scope(row)}: {row.why} ({_sources(row.cite)})" for row in found.baseline]
        out.append(f"- **{oldest}**: " + "; ".join(parts) + ".")
    out += [f"- **{c.title}**: {c.summary}" for c in found.changes]
    out.append("")
    return out


def _scope(row: Expectation) -> str:
    modes = ", ".join(f"`{m}`" for m in sorted(row.modes))
    if row.seed_policies == ALL_POLICIES:
        return modes
    return f"{modes} with seed policy {', '.join(f'`{p}`' for p in sorted(row.seed_policies))}"


def _sources(urls: Sequence[str]) -> str:
    return ", ".join(f"[{url.rsplit('#', 1)[-1]}]({url})" for url in urls)


def _scripts_section(found: Findings) -> list[str]:
    if not all(x.default_shape for x in found.shapes):
        grid = math.prod(len(values) for _, values in DEFAULT_SPACE)
        return [
            f"Left out: the scripts reproduce the default {grid}-point grid with "
            f"{UPSTREAM.workers} workers, and these runs had another shape ({_shapes(found)}).",
            "",
        ]
    out = [
        "Single-file scripts with inline metadata (PEP 723) in optuna-grid-repro's "
        "`results/scripts/`: run `uv run NAME` for the Optuna they pin, or `python NAME` with "
        "the Optuna you have. Each prints one JSON line with the missing and duplicate counts; "
        "the test suite runs both on every pinned version.",
        "",
    ]
    out += [f"- {md.code(name)}: {what}" for name, what in SCRIPTS]
    out.append("")
    return out


def _shapes(found: Findings) -> str:
    """Each distinct grid and worker count the runs had, in words."""
    seen = sorted({s for x in found.shapes for s in x.spaces})
    parts = []
    for grid, space, workers, trials in seen:
        names = ", ".join(f"`{name}`: {len(values)} values" for name, values in json.loads(space))
        parts.append(
            f"a grid of {grid} points ({names}), {workers} workers of {trials} trials each"
        )
    return "; ".join(parts)


def _setup_section(found: Findings) -> list[str]:
    files = found.files
    out = []
    if found.shapes and any(x.runs for x in found.shapes):
        out.append(
            f"Runs had {_shapes(found)} (the `threads` mode: one process, `n_jobs` = the "
            "workers). `sequential`: worker processes one after another. "
            "`concurrent`: worker processes at once, every objective call waits on a barrier "
            "so all workers hold a RUNNING trial together. Seed policies: `none` = "
            "`GridSampler(space)`, `shared` = the same seed in every worker, `per-worker` = "
            "a distinct seed per worker. Each worker process builds its own storage "
            "connection and sampler after being forked from a parent that has Optuna "
            "imported."
        )
        out.append("")
        chances = sorted(
            {
                render_fix.sci(float(coverage_probability(grid, workers, trials)))
                for x in found.shapes
                for grid, _, workers, trials in x.spaces
            }
        )
        out.append(
            "How many runs: where the expectation table says the code forces the outcome "
            "(`exact`, `loses-points`), one run of the default grid decides it (`python -m repro "
            "run --forced-runs`, default 1): workers that disagree on the grid order still "
            f"cover the grid run here by chance with probability {' or '.join(chances)} per "
            "run. Where the outcome depends on timing (`racy`), or for another shape, a "
            "scenario runs `--repetitions` times (default 2) and the rate is measured. Below, "
            "`forced runs` 0 means every scenario ran `repetitions` times."
        )
        out.append("")
    headers = [
        "Optuna",
        "Python",
        "platform",
        "packages",
        "GridSampler runs",
        "repetitions",
        "forced runs",
        "lanes",
        "wall s",
    ]
    rows = [
        [
            f.optuna_version,
            f.python,
            f.platform,
            ", ".join(f"{k} {v}" for k, v in sorted(f.packages.items())),
            str(f.run_count),
            str(f.repetitions),
            str(f.forced_runs),
            str(f.jobs),
            f"{f.wall_seconds:g}",
        ]
        for f in files
    ]
    return [*out, *md.table(headers, rows), ""]


def _faults_section(found: Findings) -> list[str]:
    """Runs that crashed inside Optuna for a known, already fixed reason."""
    if not found.faults:
        return []
    out = ["## Runs that crashed inside Optuna (known faults, not GridSampler)", ""]
    for hit in found.faults:
        out.append(
            f"- {hit.name} ([source]({hit.cite})): {len(hit.runs)} run(s): {', '.join(hit.runs)}. "
            "They are counted as errors in the tables and measure nothing about the grid."
        )
    out.append("")
    return out
