"""Markdown report rendered from results files alone (no Optuna import, no scenario run).

Same JSON in, same bytes out: everything is sorted and nothing reads the clock.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from repro import expectations
from repro.results import ResultsFile, ScenarioSummary, summarize
from repro.scenarios import UPSTREAM

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


def _verdict(results: ResultsFile, summaries: Sequence[ScenarioSummary]) -> str:
    losing = sorted({f"{s.mode}/{s.seed_policy}" for s in summaries if s.runs_with_missing})
    if not losing:
        return "every grid point evaluated exactly once in every run"
    return "points lost in: " + ", ".join(losing)


def _advice(files: Sequence[ResultsFile], table: dict[str, list[ScenarioSummary]]) -> list[str]:
    lines = []
    for f in files:
        sums = table[f.optuna_version]
        by = {(s.mode, s.seed_policy): s for s in sums if s.storage == "sqlite"}
        safe = [
            f"`{m}`/`{p}`"
            for (m, p), s in sorted(by.items())
            if s.runs and not s.runs_with_missing and not s.runs_with_duplicates and not s.errors
        ]
        lines.append(
            f"- **Optuna {f.optuna_version}**: no point lost or repeated in any run of "
            + (", ".join(safe) if safe else "no scenario")
            + "."
        )
    return lines


def render(files: Sequence[ResultsFile]) -> str:
    # Corpus runs (repro/corpus) have a section of their own; every table here is the matrix.
    files = [dataclasses.replace(f, runs=[r for r in f.runs if r.case_id is None]) for f in files]
    versions = [f.optuna_version for f in files]
    table = {f.optuna_version: summarize(f.runs) for f in files}
    violations = {f.optuna_version: _violations(f) for f in files}
    scenario_ids: list[str] = []
    for f in files:
        for s in table[f.optuna_version]:
            if s.scenario not in scenario_ids:
                scenario_ids.append(s.scenario)

    out: list[str] = []
    out.append(f"# GridSampler with several workers on Optuna {', '.join(versions)}")
    out.append("")
    out.append(
        "Does `GridSampler` evaluate every grid point exactly once when several workers share "
        "one study (optuna/optuna#5489)? Measured with real worker processes on real storages "
        "by [optuna-grid-repro](../README.md); every number below is in the JSON files next "
        "to this report."
    )
    out.append("")
    out.append("## Summary")
    out.append("")
    out.append("| Optuna | #5489 pattern: runs that lost points | mean missing | verdict |")
    out.append("|---|---|---|---|")
    for f in files:
        up = _upstream(table[f.optuna_version])
        lost = f"{up.runs_with_missing}/{up.runs}" if up else "not run"
        mean = f"{up.missing_mean:g} of {f.runs[0].grid_size}" if up and f.runs else "-"
        out.append(
            f"| {f.optuna_version} | {lost} | {mean} | {_verdict(f, table[f.optuna_version])} |"
        )
    out.append("")
    out.append(
        f"The #5489 pattern: {UPSTREAM.workers} worker processes started one after another "
        "on one SQLite file, each building `GridSampler(search_space)` without a seed and "
        "running its share of the grid, the study capped at the grid size with "
        "`MaxTrialsCallback` as in the report."
    )
    out.append("")
    out.append("What holds on each version (SQLite; no point lost or repeated in any run):")
    out.append("")
    out.extend(_advice(files, table))
    out.append("")
    out.append("## Results by scenario")
    out.append("")
    out.append(LEGEND)
    out.append("")
    out.append("| mode · seed policy · storage | " + " | ".join(versions) + " |")
    out.append("|---|" + "---|" * len(versions))
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
    out.extend(_expected_section(files))
    out.extend(_why_section())
    out.extend(_setup_section(files))
    out.extend(_faults_section(files))
    problems = [v for f in files for vs in violations[f.optuna_version].values() for v in vs]
    if problems:
        out.append("## Runs that contradict the expectation table")
        out.append("")
        out.extend(f"- {p}" for p in problems)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _expected_section(files: Sequence[ResultsFile]) -> list[str]:
    out = ["## Expected behaviour (from the source) and whether it held", ""]
    out.append("| releases | modes | seed policies | expected | measured |")
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
        "## Why the versions differ (read from `optuna/samplers/_grid.py`)",
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
    out = ["## What was run", ""]
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
    out.append("<details><summary>Environment per version</summary>")
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
    out.append("</details>")
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
