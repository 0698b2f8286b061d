"""Markdown report rendered from results files alone (no Optuna import, no scenario run).

Same JSON in, same bytes out: everything is sorted and nothing reads the clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from repro import expectations, results, timeline_report
from repro.chart import CHART_NAME
from repro.corpus import report as corpus_report
from repro.results import ResultsFile, ScenarioSummary, summarize
from repro.scenarios import SEED_POLICIES, UPSTREAM

UPSTREAM_PREFIX = f"{UPSTREAM.mode}-{UPSTREAM.seed_policy}-{UPSTREAM.storage}-"

LEGEND = (
    "Each cell: **runs that lost grid points / runs** · mean missing points · mean duplicate "
    "evaluations, then the mean split of the duplicates: `id` = the same grid id evaluated "
    "again, `col` = different grid ids that mapped to the same values (workers disagreeing on "
    "the grid order). `✓` = no run lost or repeated a point; `✗` = some run lost points. "
    "Expected outcomes come from `repro/expectations.py`; a cell that contradicts its "
    "expectation is marked `‼`."
)


def _cell(s: ScenarioSummary, version: str, violated: bool) -> str:
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


def _violations(results: ResultsFile) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for run in results.runs:
        try:
            found = expectations.violations(run, results.optuna_version)
        except expectations.NoExpectation as exc:
            found = [str(exc)]
        if found:
            out.setdefault(run.scenario, []).extend(found)
    return out


def _upstream(summaries: Sequence[ScenarioSummary]) -> ScenarioSummary | None:
    for s in summaries:
        if s.scenario.startswith(UPSTREAM_PREFIX):
            return s
    return None


Pooled = dict[tuple[str, str], list[ScenarioSummary]]

SCRIPTS = (
    ("lost_points_5489.py", "the #5489 pattern: workers without a seed, one after another"),
    ("lost_points_per_worker_seed.py", "workers with different seeds, one after another"),
)


def _pooled(summaries: Sequence[ScenarioSummary]) -> Pooled:
    """Summaries grouped by (mode, seed policy), over every storage."""
    out: Pooled = {}
    for s in summaries:
        out.setdefault((s.mode, s.seed_policy), []).append(s)
    return out


def _lost(rows: Sequence[ScenarioSummary]) -> tuple[int, int]:
    return sum(s.runs_with_missing for s in rows), sum(s.runs for s in rows)


def _run_ids(f: ResultsFile, mode: str, policy: str, *, missing: bool) -> str:
    ids = [
        f"`{r.scenario} r{r.repetition}`"
        for r in f.runs
        if r.mode == mode
        and r.seed_policy == policy
        and r.error is None
        and (r.missing > 0) == missing
    ]
    return ", ".join(ids[:2]) + (", ..." if len(ids) > 2 else "")


def _what_to_do(pooled: Pooled, exact_on: dict[tuple[str, str], list[str]]) -> str:
    """Advice read off the measurements: which duplicates happened, and what removed them."""

    def mean(mode: str, policy: str, field: str) -> float:
        rows = pooled.get((mode, policy), [])
        runs = sum(r.runs for r in rows)
        return sum(getattr(r, field) * r.runs for r in rows) / runs if runs else 0.0

    process = ("sequential", "concurrent")
    advice = []
    if any(mean(m, "none", "colliding_id_mean") for m in process):
        fix = "pass the same `seed` to `GridSampler` in every worker"
        if any(mean(m, "shared", "colliding_id_mean") for m in process):
            fix = "upgrade"
        newer = exact_on.get(("sequential", "none"), [])
        advice.append(fix + (f" (or use {', '.join(newer)})" if newer else ""))
    if any(mean(m, "per-worker", "colliding_id_mean") for m in process):
        advice.append("never give workers different seeds")
    if any(mean(m, p, "same_id_mean") for m in ("concurrent", "threads") for p in SEED_POLICIES):
        clean = exact_on.get(("concurrent", "none"), [])
        text = "expect overlapping workers to pick the same grid id now and then"
        if mean("concurrent", "shared", "same_id_mean") > mean(
            "concurrent", "none", "same_id_mean"
        ):
            text += ", more often with a shared seed"
        advice.append(text + (f" (not on {', '.join(clean)})" if clean else ""))
    if not advice:
        return "Nothing: no run lost a point."
    text = "; ".join(advice)
    return text[0].upper() + text[1:] + "."


def render_dir(results_dir: Path, skipped: list[str] | None = None) -> str:
    """The report for everything measured in ``results_dir``: the per-version JSON files and,
    when present, the release timeline. With ``skipped``, unreadable files are left out and
    named there (see ``results.load_all``)."""
    files = results.load_all(results_dir, skipped)
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
    # Corpus runs (repro/corpus) have a section of their own; every table here is the matrix.
    files = [dataclasses.replace(f, runs=[r for r in f.runs if r.case_id is None]) for f in files]
    versions = [f.optuna_version for f in files]
    table = {f.optuna_version: summarize(f.runs) for f in files}
    violations = {f.optuna_version: _violations(f) for f in files}
    grid = files[0].runs[0].grid_size if files and files[0].runs else 0

    out: list[str] = [
        f"# GridSampler with several workers on Optuna {', '.join(versions)}",
        "",
        "Does `GridSampler` evaluate every grid point exactly once when several workers share "
        "one study (optuna/optuna#5489)? Measured with real worker processes on real storages "
        "by [optuna-grid-repro](../README.md); every number below is in the JSON files next to "
        "this report.",
        "",
        "## Summary",
        "",
        "| Optuna | #5489 pattern: runs that lost points | (mode, seed policy) pairs that lost "
        "points | what to do |",
        "|---|---|---|---|",
    ]
    exact_on: dict[tuple[str, str], list[str]] = {}
    for f in files:
        for key, rows in _pooled(table[f.optuna_version]).items():
            if rows and not any(r.runs_with_missing or r.runs_with_duplicates for r in rows):
                exact_on.setdefault(key, []).append(f.optuna_version)
    for f in files:
        pooled = _pooled(table[f.optuna_version])
        up = _upstream(table[f.optuna_version])
        lost_up = f"{up.runs_with_missing}/{up.runs}" if up else "not run"
        losing = sum(1 for rows in pooled.values() if _lost(rows)[0])
        out.append(
            f"| **{f.optuna_version}** | {lost_up} | {losing} of {len(pooled)} | "
            f"{_what_to_do(pooled, exact_on)} |"
        )
    out += [
        "",
        f"The #5489 pattern: {UPSTREAM.workers} worker processes started one after another on "
        "one SQLite file, each building `GridSampler(search_space)` without a seed and running "
        f"its share of a {grid}-point grid, the study capped at the grid size with "
        "`MaxTrialsCallback` as in the report. Why: 3.4.0 shuffles the grid in every process "
        "and takes the grid id from the trial number (PR #4918); 4.0.0 makes `seed=None` mean "
        "seed 0 (PR #5490). Details, source lines and the other modes are below.",
        "",
        f"![Mean missing and duplicate points per run]({CHART_NAME})",
        "",
    ]
    out += _details("Results by scenario", _scenario_table(files, table, violations))
    for section in (timeline_section, corpus_section):
        if section:
            heading, *body = section
            out += _details(heading.lstrip("# "), body)
    out += _details("Uncertainty over repetitions", _uncertainty_table(files, table))
    out += _details("Advice checked against the measurements", _advice_checked(files, table))
    out += _details(
        "Expected behaviour (from the source) and whether it held", _expected_section(files)
    )
    out += _details("Why the versions differ", _why_section())
    out += _details("Minimal reproductions", _scripts_section())
    out += _details("What was run, and on what", _setup_section(files))
    out.extend(_faults_section(files))
    problems = [v for f in files for vs in violations[f.optuna_version].values() for v in vs]
    if problems:
        out += ["## Runs that contradict the expectation table", ""]
        out += [f"- {p}" for p in problems]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _details(title: str, body: list[str]) -> list[str]:
    """A collapsible block; GitHub renders Markdown inside it after a blank line."""
    return [f"<details><summary><b>{title}</b></summary>", "", *body, "</details>", ""]


def _scenario_table(
    files: Sequence[ResultsFile],
    table: dict[str, list[ScenarioSummary]],
    violations: dict[str, dict[str, list[str]]],
) -> list[str]:
    scenario_ids: list[str] = []
    for f in files:
        for s in table[f.optuna_version]:
            if s.scenario not in scenario_ids:
                scenario_ids.append(s.scenario)
    out = [
        LEGEND,
        "",
        "| mode · seed policy · storage | " + " | ".join(f.optuna_version for f in files) + " |",
        "|---|" + "---|" * len(files),
    ]
    for sid in scenario_ids:
        cells = []
        label = sid
        for f in files:
            found = next((x for x in table[f.optuna_version] if x.scenario == sid), None)
            if found is None:
                cells.append("not run")
                continue
            label = _scenario_label(found)
            cells.append(_cell(found, f.optuna_version, sid in violations[f.optuna_version]))
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    out.append("")
    return out


def _uncertainty_table(
    files: Sequence[ResultsFile], table: dict[str, list[ScenarioSummary]]
) -> list[str]:
    out = [
        "Per version and scenario: the mean over repetitions with its 95% Student-t interval "
        "(clipped at 0; with 2 repetitions it is wide), and the share of repetitions that lost "
        "any point with its 95% Wilson interval.",
        "",
        "| Optuna | scenario | runs | missing: mean [95% CI] | duplicates: mean [95% CI] | "
        "runs losing points [95% Wilson] |",
        "|---|---|---|---|---|---|",
    ]
    for f in files:
        for s in table[f.optuna_version]:
            if not s.runs:
                continue
            lo, hi = s.missing_share_wilson95
            out.append(
                f"| {f.optuna_version} | {_scenario_label(s)} | {s.runs} | "
                f"{s.missing_mean:g} [{s.missing_ci95[0]:g}, {s.missing_ci95[1]:g}] | "
                f"{s.duplicates_mean:g} [{s.duplicates_ci95[0]:g}, {s.duplicates_ci95[1]:g}] | "
                f"{s.runs_with_missing}/{s.runs} [{lo:g}, {hi:g}] |"
            )
    out.append("")
    return out


def _advice_checked(
    files: Sequence[ResultsFile], table: dict[str, list[ScenarioSummary]]
) -> list[str]:
    out = [
        "Common advice, tested against these runs. `k/n` counts runs that lost grid points, "
        "over every storage; run ids name examples in the JSON.",
        "",
        "| advice | " + " | ".join(f.optuna_version for f in files) + " |",
        "|---|" + "---|" * len(files),
    ]
    items: list[tuple[str, list[str]]] = [
        ("1. Set an explicit seed in `GridSampler` to get 3.2.0's behaviour back", []),
        ("2. Use `n_jobs=1` to avoid the problem", []),
        ("3. Deduplicate the results afterwards", []),
        ("4. Expect slightly more trials than the grid size in distributed runs", []),
        ("5. Use another sampler such as `TPESampler` if grid search is not required", []),
    ]
    for f in files:
        pooled = _pooled(table[f.optuna_version])

        def lost(mode: str, policy: str, pooled: Pooled = pooled) -> tuple[int, int]:
            return _lost(pooled.get((mode, policy), []))

        v = f.optuna_version
        process = ("sequential", "concurrent")
        shared = [sum(x) for x in zip(*(lost(m, "shared") for m in process))]
        per_worker = [sum(x) for x in zip(*(lost(m, "per-worker") for m in process))]
        none = [sum(x) for x in zip(*(lost(m, "none") for m in process))]
        if shared[0] == 0 and per_worker[0]:
            seed = (
                f"holds only when every worker passes the same seed: shared seed "
                f"{shared[0]}/{shared[1]}, a seed per worker {per_worker[0]}/{per_worker[1]} "
                f"(e.g. {_run_ids(f, 'sequential', 'per-worker', missing=True)})"
            )
        elif shared[0]:
            seed = (
                f"does not hold: with a shared seed {shared[0]}/{shared[1]} runs lost points "
                f"(e.g. {_run_ids(f, 'concurrent', 'shared', missing=True)}), without one "
                f"{none[0]}/{none[1]}"
            )
        else:
            seed = f"not needed: no seed policy lost points ({none[0]}/{none[1]} without seed)"
        items[0][1].append(seed)

        seq_none = lost("sequential", "none")
        threads = [sum(x) for x in zip(*(lost("threads", p) for p in SEED_POLICIES))]
        if seq_none[0]:
            jobs = (
                f"does not hold: every worker ran `n_jobs=1` and {seq_none[0]}/{seq_none[1]} "
                f"sequential runs without seed lost points "
                f"(e.g. {_run_ids(f, 'sequential', 'none', missing=True)})"
            )
        elif threads[0]:
            jobs = (
                f"holds within one process: `n_jobs=4` lost points in {threads[0]}/{threads[1]} "
                f"runs, `n_jobs=1` workers one after another in {seq_none[0]}/{seq_none[1]}"
            )
        else:
            jobs = (
                f"not needed: `n_jobs=4` lost points in {threads[0]}/{threads[1]} runs, "
                f"`n_jobs=1` sequential workers in {seq_none[0]}/{seq_none[1]}"
            )
        items[1][1].append(jobs)

        ok = [r for r in f.runs if r.error is None]
        with_dups = [r for r in ok if r.duplicates]
        still_missing = [r for r in with_dups if r.missing]
        if with_dups:
            dedup = (
                f"does not hold: deduplicating leaves points never evaluated in "
                f"{len(still_missing)}/{len(with_dups)} runs that had duplicates"
            )
        else:
            dedup = "nothing to deduplicate: no run had duplicates"
        items[2][1].append(dedup)

        over = [r for r in ok if r.trials > r.grid_size]
        items[3][1].append(
            f"not what happens under a capped budget: {len(over)}/{len(ok)} runs had more "
            f"trials than the grid; with `MaxTrialsCallback` at the grid size (as in #5489) "
            f"each duplicate costs a grid point instead ({len(still_missing)} runs lost points)"
        )
        items[4][1].append("not measured: every scenario here runs `GridSampler`")
        del v
    for title, cells in items:
        out.append(f"| {title} | " + " | ".join(cells) + " |")
    out.append("")
    return out


def _scripts_section() -> list[str]:
    out = [
        "Single-file scripts with inline metadata (PEP 723) in [`scripts/`](scripts/): run "
        "`uv run scripts/NAME` for the Optuna they pin, or `python scripts/NAME` with the "
        "Optuna you have. Each prints one JSON line with the missing and duplicate counts; "
        "the test suite runs both on every pinned version.",
        "",
    ]
    out += [f"- [`{name}`](scripts/{name}): {what}" for name, what in SCRIPTS]
    out.append("")
    return out


def _expected_section(files: Sequence[ResultsFile]) -> list[str]:
    out = ["| releases | modes | seed policies | expected | measured |"]
    out.append("|---|---|---|---|---|")
    for row in expectations.TABLE:
        held, broken = [], []
        for f in files:
            runs = [r for r in f.runs if row.covers(f.optuna_version, r.mode, r.seed_policy)]
            bad = [
                f"{r.scenario} r{r.repetition}"
                for r in runs
                if expectations.violations(r, f.optuna_version, row)
            ]
            if runs and not bad:
                held.append(f.optuna_version)
            elif bad:
                broken.append(f"{f.optuna_version}: contradicted by {', '.join(bad)}")
        verdict = "; ".join(([f"held in every run on {', '.join(held)}"] if held else []) + broken)
        releases = f"{row.since} ≤ v < {row.until}" if row.until else f"v ≥ {row.since}"
        out.append(
            f"| {releases} | {', '.join(sorted(row.modes))} | "
            f"{', '.join(sorted(row.seed_policies))} | {row.outcome} | "
            f"{verdict or 'not measured'} |"
        )
    out.append("")
    out.append(
        "Outcomes: `exact` = every point once in every run; `loses-points` = points "
        "missing in every run, duplicates only from colliding grid ids; `racy` = workers "
        "agree on the grid, but overlapping workers can pick the same grid id, so the "
        "rate is measured rather than promised."
    )
    out.append("")
    return out


def _why_section() -> list[str]:
    src = expectations.source
    return [
        "Read from `optuna/samplers/_grid.py` at each release's tag:",
        "",
        f"- **3.2.0** ([L113]({src('v3.2.0', 'L113')}), [L152]({src('v3.2.0', 'L152')}), "
        f"[L221-L247]({src('v3.2.0', 'L221-L247')})): the grid is "
        "`itertools.product(...)` in a fixed order, the same in every worker. Each new trial "
        "reads all trials from the storage, removes grid ids that are finished or running, and "
        "picks one of the rest at random. Workers therefore agree on what a grid id means; a "
        "duplicate needs two workers to read the storage before either has written its "
        "`grid_id` ([L154-L155]({}) ), which the `concurrent` and `threads` runs provoke. "
        "A fixed seed makes that worse: workers with the same seed draw the same index from "
        "the same candidate list.".format(src("v3.2.0", "L154-L155")),
        f"- **3.4.0 to 3.6.x** ([L119-L120]({src('v3.6.1', 'L119-L120')}), "
        f"[L136-L141]({src('v3.6.1', 'L136-L141')})): PR #4918 shuffles `_all_grids` in "
        "`__init__` with `LazyRandomState(seed)`, and for the first `len(grid)` trials sets "
        "`grid_id = trial.number` without looking at the storage. With `seed=None` every "
        "process draws its own shuffle from OS entropy, so trial 7 in worker B names a "
        "different point than grid id 7 would in worker A. All ids `0..n-1` get used once, "
        "`after_trial` sees no unvisited id and stops the study, yet some points were never "
        "evaluated and others twice: the duplicates in this report are all `col` (colliding "
        "ids), never `id`.",
        f"- **4.0.0 and later** ([L130-L131]({src('v5.0.0', 'L130-L131')})): PR #5490 "
        "changes the default to `LazyRandomState(seed or 0)`, so every process shuffles the "
        "grid identically unless it is given a different seed. The `grid_id = trial.number` "
        "path stays, which is why per-worker seeds still lose points on the newest release "
        "while `seed=None` and a shared seed are exact.",
        "",
    ]


def _setup_section(files: Sequence[ResultsFile]) -> list[str]:
    out = []
    if files and files[0].runs:
        r = files[0].runs[0]
        space = ", ".join(f"`{name}`: {len(values)} values" for name, values in r.search_space)
        out.append(
            f"Grid of {r.grid_size} points ({space}); {r.workers} workers of "
            f"{r.trials_per_worker} trials each (the `threads` mode: one process, "
            f"`n_jobs={r.workers}`). `sequential`: worker processes one after another. "
            "`concurrent`: worker processes at once, every objective call waits on a barrier "
            "so all workers hold a RUNNING trial together. Seed policies: `none` = "
            "`GridSampler(space)`, `shared` = the same seed in every worker, `per-worker` = "
            "a distinct seed per worker. Each worker process builds its own storage "
            "connection and sampler after being forked from a parent that has Optuna "
            "imported."
        )
        out.append("")
    out.append("| Optuna | Python | platform | packages | runs | repetitions | lanes | wall s |")
    out.append("|---|---|---|---|---|---|---|---|")
    for f in files:
        packages = ", ".join(f"{k} {v}" for k, v in sorted(f.packages.items()))
        out.append(
            f"| {f.optuna_version} | {f.python} | {f.platform} | {packages} | {f.run_count} | "
            f"{f.repetitions} | {f.jobs} | {f.wall_seconds:g} |"
        )
    out.append("")
    return out


def _faults_section(files: Sequence[ResultsFile]) -> list[str]:
    """Runs that crashed inside Optuna for a known, already fixed reason."""
    hits: dict[str, list[str]] = {}
    cites: dict[str, str] = {}
    for f in files:
        for run in f.runs:
            fault = expectations.known_fault(run, f.optuna_version)
            if fault:
                hits.setdefault(fault.name, []).append(
                    f"{f.optuna_version} {run.scenario} r{run.repetition}"
                )
                cites[fault.name] = fault.cite
    if not hits:
        return []
    out = ["## Runs that crashed inside Optuna (known faults, not GridSampler)", ""]
    for name, runs in sorted(hits.items()):
        out.append(
            f"- {name} ([source]({cites[name]})): {len(runs)} run(s): {', '.join(runs)}. "
            "They are counted as errors in the table above and measure nothing about "
            "the grid."
        )
    out.append("")
    return out
