"""What the measurements say, decided once as plain data: per version the #5489 verdict and what
to do, the common advice checked, whether each expectation row held, the known faults hit, and
the upstream changes between the versions measured.

No Markdown is made here (the upstream change records carry their own, cited text):
``render.py`` turns these records into text and decides nothing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from repro import expectations, remedies
from repro.expectations import Expectation
from repro.results import ResultsFile, RunRecord, ScenarioSummary, summarize
from repro.scenarios import ALL_STORAGES, DEFAULT_SPACE, MODES, SEED_POLICIES, UPSTREAM
from repro.timeline import changes as upstream_changes
from repro.timeline.changes import SourceChange

# Launch modes with one worker per process: where a seed policy decides the grid order.
PROCESS_MODES = ("sequential", "concurrent")


@dataclass(frozen=True)
class Tally:
    """Runs that lost grid points, out of the runs that finished."""

    lost: int
    runs: int

    def __add__(self, other: Tally) -> Tally:
        return Tally(self.lost + other.lost, self.runs + other.runs)


@dataclass(frozen=True)
class Examples:
    """The first runs (``scenario rN``) that show a finding, and whether there are more."""

    run_ids: tuple[str, ...]
    more: bool


NO_EXAMPLES = Examples((), False)


@dataclass(frozen=True)
class WhatToDo:
    """The advice read off one version's measurements, in the order it is given."""

    # Workers without a seed disagreed on the grid: give them one seed, or upgrade when even a
    # shared seed lost points; ``exact_elsewhere``: versions where workers without a seed were
    # exact.
    seed_fix: Literal["same-seed", "upgrade"] | None
    exact_elsewhere: tuple[str, ...]
    avoid_per_worker_seeds: bool
    # Overlapping workers picked the same grid id; ``race_free_on``: versions where concurrent
    # workers without a seed never did.
    same_id_race: bool
    race_worse_with_shared_seed: bool
    race_free_on: tuple[str, ...]


@dataclass(frozen=True)
class VersionVerdict:
    version: str
    upstream: Tally | None  # the #5489 pattern; None when it was not run
    losing_pairs: int  # (mode, seed policy) pairs with a run that lost points
    pairs: int
    what_to_do: WhatToDo


SeedVerdict = Literal["same-seed-only", "does-not-hold", "not-needed"]
SingleJobVerdict = Literal["does-not-hold", "within-one-process", "not-needed"]


@dataclass(frozen=True)
class SeedCheck:
    """ "Set an explicit seed in GridSampler to get 3.2.0's behaviour back"."""

    verdict: SeedVerdict
    shared: Tally
    per_worker: Tally
    none: Tally
    examples: Examples  # runs that lost points despite the advice


@dataclass(frozen=True)
class SingleJobCheck:
    """ "Use n_jobs=1 to avoid the problem"."""

    verdict: SingleJobVerdict
    sequential_none: Tally  # every worker of these runs ran n_jobs=1
    threads: Tally
    examples: Examples


@dataclass(frozen=True)
class AdviceChecked:
    version: str
    seed: SeedCheck
    single_job: SingleJobCheck
    with_duplicates: int  # finished runs with a duplicate evaluation
    still_missing: int  # of those, runs that never evaluated some point: deduplicating loses it
    over_grid: int  # finished runs with more trials than the grid
    finished: int
    # The remedies measured for items 4 and 5 (repro/remedies.py), pooled per remedy.
    more_trials: tuple[remedies.Cell, ...] = ()
    other_sampler: tuple[remedies.Cell, ...] = ()


@dataclass(frozen=True)
class RowVerdict:
    """One row of ``expectations.TABLE`` against the runs it covers."""

    row: Expectation
    held_on: tuple[str, ...]  # versions where it covers runs and every one agreed
    contradicted: tuple[tuple[str, tuple[str, ...]], ...]  # (version, run ids)


@dataclass(frozen=True)
class FaultHits:
    """Runs that crashed inside Optuna for a known reason (``expectations.KNOWN_FAULTS``)."""

    name: str
    cite: str
    runs: tuple[str, ...]  # "version scenario rN"


@dataclass(frozen=True)
class Coverage:
    """What a claim covers: the storages and launch modes of the runs behind it."""

    storages: tuple[str, ...]
    modes: tuple[str, ...]


@dataclass(frozen=True)
class Shape:
    """The shapes one version's matrix runs had: how many runs, with how many workers, on
    which grids, storages and launch modes. Every figure the report gives about what was run
    comes from here, never from the defaults."""

    version: str
    runs: int
    remedy_runs: int  # under a remedy (corpus cases have a section and a file of their own)
    workers: tuple[int, ...]
    grid_sizes: tuple[int, ...]
    # (grid size, [[name, values], ...], workers, trials per worker), one per distinct shape.
    spaces: tuple[tuple[int, str, int, int], ...]
    coverage: Coverage
    upstream_workers: tuple[int, ...]  # the #5489 pattern's runs
    default_shape: bool  # every run on the default grid with the default workers


@dataclass(frozen=True)
class Findings:
    files: tuple[ResultsFile, ...]  # matrix runs only: corpus runs have a section of their own
    summaries: Mapping[str, tuple[ScenarioSummary, ...]]  # by version
    versions: tuple[VersionVerdict, ...]
    advice: tuple[AdviceChecked, ...]
    expectations: tuple[RowVerdict, ...]
    contradictions: Mapping[str, Mapping[str, tuple[str, ...]]]  # version -> scenario -> what
    faults: tuple[FaultHits, ...]
    # The story of why the versions differ: the expectation rows of the oldest version measured,
    # then the upstream changes that move its outcomes up to the newest.
    baseline: tuple[Expectation, ...]
    changes: tuple[SourceChange, ...]
    # Per version, the remedies measured exact and the others with their numbers.
    remedy_advice: tuple[remedies.Advice, ...] = ()
    shapes: tuple[Shape, ...] = ()
    # (version, remedy label) -> where the remedy's runs were measured.
    remedy_coverage: Mapping[tuple[str, str], Coverage] = dataclasses.field(default_factory=dict)

    @property
    def coverage(self) -> Coverage:
        """Every storage and launch mode of the matrix runs, over every version."""
        return Coverage(
            tuple(s for s in ALL_STORAGES if any(s in x.coverage.storages for x in self.shapes)),
            tuple(m for m in MODES if any(m in x.coverage.modes for x in self.shapes)),
        )

    @property
    def workers(self) -> tuple[int, ...]:
        return tuple(sorted({w for x in self.shapes for w in x.workers}))

    @property
    def upstream_workers(self) -> tuple[int, ...]:
        return tuple(sorted({w for x in self.shapes for w in x.upstream_workers}))

    @property
    def grid_size(self) -> int:
        return self.files[0].runs[0].grid_size if self.files and self.files[0].runs else 0


Pooled = dict[tuple[str, str], list[ScenarioSummary]]


def pooled(summaries: Iterable[ScenarioSummary]) -> Pooled:
    """Summaries grouped by (mode, seed policy), over every storage."""
    out: Pooled = {}
    for s in summaries:
        out.setdefault((s.mode, s.seed_policy), []).append(s)
    return out


def pooled_mean(rows: Sequence[ScenarioSummary], field: str) -> float:
    """The mean of ``field`` (a ``*_mean`` of ScenarioSummary) over every run of ``rows``."""
    runs = sum(r.runs for r in rows)
    return sum(getattr(r, field) * r.runs for r in rows) / runs if runs else 0.0


def _tally(rows: Sequence[ScenarioSummary]) -> Tally:
    return Tally(sum(s.runs_with_missing for s in rows), sum(s.runs for s in rows))


def _examples(f: ResultsFile, mode: str, policy: str) -> Examples:
    """Runs of (mode, policy) that lost points."""
    ids = [
        _run_id(r)
        for r in f.runs
        if r.mode == mode and r.seed_policy == policy and r.error is None and r.missing > 0
    ]
    return Examples(tuple(ids[:2]), len(ids) > 2)


def decide(files: Sequence[ResultsFile]) -> Findings:
    """Everything the report says, from results files alone (corpus runs are left out here)."""
    measured = {
        f.optuna_version: (
            tuple(remedies.remedy_cells(f, ("x1.5", "x2"))),
            tuple(remedies.remedy_cells(f, ("bruteforce", "enqueued"))),
        )
        for f in files
    }
    remedy_advice = tuple(remedies.advice(files))
    remedy_coverage = _remedy_coverage(files)
    remedy_runs = {
        f.optuna_version: sum(1 for r in f.runs if r.case_id is None and r.remedy != "grid")
        for f in files
    }
    files = tuple(dataclasses.replace(f, runs=[r for r in f.runs if r.in_matrix]) for f in files)
    summaries = {f.optuna_version: tuple(summarize(f.runs)) for f in files}
    exact_on: dict[tuple[str, str], list[str]] = {}
    for f in files:
        for key, rows in pooled(summaries[f.optuna_version]).items():
            if rows and not any(r.runs_with_missing or r.runs_with_duplicates for r in rows):
                exact_on.setdefault(key, []).append(f.optuna_version)
    versions = [f.optuna_version for f in files]
    return Findings(
        files=files,
        summaries=summaries,
        versions=tuple(_verdict(f, summaries[f.optuna_version], exact_on) for f in files),
        advice=tuple(
            dataclasses.replace(
                _advice_checked(f, summaries[f.optuna_version]),
                more_trials=measured[f.optuna_version][0],
                other_sampler=measured[f.optuna_version][1],
            )
            for f in files
        ),
        remedy_advice=remedy_advice,
        shapes=tuple(_shape(f, remedy_runs[f.optuna_version]) for f in files),
        remedy_coverage=remedy_coverage,
        expectations=tuple(_row_verdict(row, files) for row in expectations.TABLE),
        contradictions={f.optuna_version: _contradictions(f) for f in files},
        faults=_faults(files),
        baseline=_baseline(versions[0]) if versions else (),
        changes=_changes(versions[0], versions[-1]) if versions else (),
    )


def _coverage(runs: Iterable[RunRecord]) -> Coverage:
    runs = list(runs)
    return Coverage(
        tuple(s for s in ALL_STORAGES if any(r.storage == s for r in runs)),
        tuple(m for m in MODES if any(r.mode == m for r in runs)),
    )


def _shape(f: ResultsFile, remedy_runs: int) -> Shape:
    """``f`` holds matrix runs only; ``remedy_runs``: its file's runs under a remedy."""
    spaces = sorted(
        {(r.grid_size, json.dumps(r.search_space), r.workers, r.trials_per_worker) for r in f.runs}
    )
    default_space = json.dumps([[name, list(values)] for name, values in DEFAULT_SPACE])
    return Shape(
        version=f.optuna_version,
        runs=len(f.runs),
        remedy_runs=remedy_runs,
        workers=tuple(sorted({r.workers for r in f.runs})),
        grid_sizes=tuple(sorted({r.grid_size for r in f.runs})),
        spaces=tuple(spaces),
        coverage=_coverage(f.runs),
        upstream_workers=tuple(
            sorted(
                {
                    r.workers
                    for r in f.runs
                    if (r.mode, r.seed_policy, r.storage)
                    == (UPSTREAM.mode, UPSTREAM.seed_policy, UPSTREAM.storage)
                }
            )
        ),
        default_shape=all(s[1:3] == (default_space, UPSTREAM.workers) for s in spaces),
    )


def _remedy_coverage(files: Sequence[ResultsFile]) -> dict[tuple[str, str], Coverage]:
    """Where each remedy of each version was measured: the storages and modes of its cells."""
    storages: dict[tuple[str, str], set[str]] = {}
    modes: dict[tuple[str, str], set[str]] = {}
    for cell in remedies.cells(files):
        key = (cell.version, cell.strategy.remedy_label)
        storages.setdefault(key, set()).update(cell.storages)
        modes.setdefault(key, set()).add(cell.strategy.mode)
    return {
        key: Coverage(
            tuple(s for s in ALL_STORAGES if s in storages[key]),
            tuple(m for m in MODES if m in modes[key]),
        )
        for key in storages
    }


def _verdict(
    f: ResultsFile,
    summaries: Sequence[ScenarioSummary],
    exact_on: Mapping[tuple[str, str], Sequence[str]],
) -> VersionVerdict:
    groups = pooled(summaries)
    upstream = next((s for s in summaries if _is_upstream(s)), None)
    return VersionVerdict(
        version=f.optuna_version,
        upstream=Tally(upstream.runs_with_missing, upstream.runs) if upstream else None,
        losing_pairs=sum(1 for rows in groups.values() if _tally(rows).lost),
        pairs=len(groups),
        what_to_do=_what_to_do(groups, exact_on),
    )


def _is_upstream(summary: ScenarioSummary) -> bool:
    """Sequential workers without a seed on SQLite: the #5489 pattern."""
    return (summary.mode, summary.seed_policy, summary.storage) == (
        UPSTREAM.mode,
        UPSTREAM.seed_policy,
        UPSTREAM.storage,
    )


def _what_to_do(groups: Pooled, exact_on: Mapping[tuple[str, str], Sequence[str]]) -> WhatToDo:
    """Which duplicates happened, and what removed them on some version."""

    def mean(mode: str, policy: str, field: str) -> float:
        return pooled_mean(groups.get((mode, policy), []), field)

    none_collides = any(mean(m, "none", "colliding_id_mean") for m in PROCESS_MODES)
    shared_collides = any(mean(m, "shared", "colliding_id_mean") for m in PROCESS_MODES)
    same_id_race = any(
        mean(m, p, "same_id_mean") for m in ("concurrent", "threads") for p in SEED_POLICIES
    )
    return WhatToDo(
        seed_fix=("upgrade" if shared_collides else "same-seed") if none_collides else None,
        exact_elsewhere=tuple(exact_on.get(("sequential", "none"), ())),
        avoid_per_worker_seeds=any(
            mean(m, "per-worker", "colliding_id_mean") for m in PROCESS_MODES
        ),
        same_id_race=same_id_race,
        race_worse_with_shared_seed=mean("concurrent", "shared", "same_id_mean")
        > mean("concurrent", "none", "same_id_mean"),
        race_free_on=tuple(exact_on.get(("concurrent", "none"), ())),
    )


def _advice_checked(f: ResultsFile, summaries: Sequence[ScenarioSummary]) -> AdviceChecked:
    groups = pooled(summaries)

    def lost(modes: Iterable[str], policies: Iterable[str]) -> Tally:
        total = Tally(0, 0)
        for mode in modes:
            for policy in policies:
                total += _tally(groups.get((mode, policy), []))
        return total

    shared = lost(PROCESS_MODES, ["shared"])
    per_worker = lost(PROCESS_MODES, ["per-worker"])
    seed_verdict: SeedVerdict = "not-needed"
    seed_examples = NO_EXAMPLES
    if shared.lost == 0 and per_worker.lost:
        seed_verdict, seed_examples = "same-seed-only", _examples(f, "sequential", "per-worker")
    elif shared.lost:
        seed_verdict, seed_examples = "does-not-hold", _examples(f, "concurrent", "shared")
    none = lost(PROCESS_MODES, ["none"])

    sequential_none = lost(["sequential"], ["none"])
    threads = lost(["threads"], SEED_POLICIES)
    job_verdict: SingleJobVerdict = "not-needed"
    job_examples = NO_EXAMPLES
    if sequential_none.lost:
        job_verdict, job_examples = "does-not-hold", _examples(f, "sequential", "none")
    elif threads.lost:
        job_verdict = "within-one-process"

    finished = [r for r in f.runs if r.error is None]
    with_duplicates = [r for r in finished if r.duplicates]
    return AdviceChecked(
        version=f.optuna_version,
        seed=SeedCheck(seed_verdict, shared, per_worker, none, seed_examples),
        single_job=SingleJobCheck(job_verdict, sequential_none, threads, job_examples),
        with_duplicates=len(with_duplicates),
        still_missing=sum(1 for r in with_duplicates if r.missing),
        over_grid=sum(1 for r in finished if r.trials > r.grid_size),
        finished=len(finished),
    )


def _row_verdict(row: Expectation, files: Sequence[ResultsFile]) -> RowVerdict:
    held: list[str] = []
    contradicted: list[tuple[str, tuple[str, ...]]] = []
    for f in files:
        runs = [r for r in f.runs if row.covers(f.optuna_version, r.mode, r.seed_policy)]
        bad = tuple(_run_id(r) for r in runs if expectations.violations(r, f.optuna_version, row))
        if runs and not bad:
            held.append(f.optuna_version)
        elif bad:
            contradicted.append((f.optuna_version, bad))
    return RowVerdict(row, tuple(held), tuple(contradicted))


def _run_id(r: RunRecord) -> str:
    return f"{r.scenario} r{r.repetition}"


def _contradictions(f: ResultsFile) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for run in f.runs:
        try:
            found = expectations.violations(run, f.optuna_version)
        except expectations.NoExpectation as exc:
            found = [str(exc)]
        if found:
            out[run.scenario] = (*out.get(run.scenario, ()), *found)
    return out


def _faults(files: Sequence[ResultsFile]) -> tuple[FaultHits, ...]:
    hits: dict[str, list[str]] = {}
    cites: dict[str, str] = {}
    for f in files:
        for run in f.runs:
            fault = expectations.known_fault(run, f.optuna_version)
            if fault:
                hits.setdefault(fault.name, []).append(f"{f.optuna_version} {_run_id(run)}")
                cites[fault.name] = fault.cite
    return tuple(FaultHits(name, cites[name], tuple(runs)) for name, runs in sorted(hits.items()))


def _baseline(version: str) -> tuple[Expectation, ...]:
    """The expectation rows that hold on ``version``: what its code does, before any change."""
    return tuple(
        row
        for row in expectations.TABLE
        if any(row.covers(version, m, p) for m in row.modes for p in row.seed_policies)
    )


def _changes(oldest: str, newest: str) -> tuple[SourceChange, ...]:
    """The upstream changes between two releases that can change which point a trial gets."""
    return tuple(c for c in upstream_changes.in_window(oldest, newest) if c.behavioural)
