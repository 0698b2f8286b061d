"""What works on your version: every remedy users are told about, judged per Optuna
version and storage from the results JSON alone.

Deciding (``cells``, ``families``, ``advice``) returns plain data; the ``render_*`` functions
turn it into Markdown lines for the report. Nothing here imports Optuna.

A strategy is what a user runs: a remedy (``Scenario.remedy``), a seed policy and a launch
mode. Today's GridSampler scenarios are the "grid" remedy; one process with ``n_jobs`` threads
is today's "threads" mode, pooled over seed policies because one sampler serves every thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from repro.scenarios import ALL_STORAGES, REMEDY_SINCE, SEED_POLICIES
from repro.stats import wilson95
from repro.versions import version_key

if TYPE_CHECKING:
    # Only for annotations: results imports this module to store the remedy cells beside
    # the runs it writes, so a run-time import back would close a circle.
    from repro.results import ResultsFile, RunRecord

ANY_SEED = "any"
PROCESSES = "processes"  # sequential and concurrent pooled: the remedy a user picks
MODE_ORDER = ("sequential", "concurrent", "threads", PROCESSES)


@dataclass(frozen=True, order=True)
class Strategy:
    remedy: str
    seed_policy: str  # or ANY_SEED
    mode: str

    @property
    def label(self) -> str:
        if self.mode == "threads":
            return "`GridSampler`, one process with `n_jobs` threads"
        sampler = {
            "grid": "`GridSampler`",
            "bruteforce": "`BruteForceSampler`",
            "bruteforce-strict": "`BruteForceSampler(avoid_premature_stop=True)`",
            "enqueued": "grid enqueued, `RandomSampler` pops it",
            "x1.5": "`GridSampler`, budget 1.5x the grid",
            "x2": "`GridSampler`, budget 2x the grid",
        }[self.remedy]
        seed = "" if self.seed_policy == ANY_SEED else f", seed {self.seed_policy}"
        return f"{sampler}{seed}, {self.mode}"

    @property
    def remedy_label(self) -> str:
        """The strategy without its launch mode: what a user changes."""
        return self.label if self.mode == "threads" else self.label.rsplit(", ", 1)[0]


def _strategy(run: RunRecord) -> Strategy:
    if run.mode == "threads":
        return Strategy(run.remedy, ANY_SEED, run.mode)
    return Strategy(run.remedy, run.seed_policy, run.mode)


def _rank(s: Strategy) -> tuple[int, int, int]:
    remedies = ("grid", "bruteforce", "bruteforce-strict", "enqueued", "x1.5", "x2")
    seeds = (*SEED_POLICIES, ANY_SEED)
    return remedies.index(s.remedy), seeds.index(s.seed_policy), MODE_ORDER.index(s.mode)


@dataclass(frozen=True)
class Cell:
    """One strategy on one version over some storages; errored runs are counted apart."""

    strategy: Strategy
    version: str
    storages: tuple[str, ...]
    runs: int
    errors: int
    lost: int  # runs with at least one grid point never evaluated
    duplicated: int  # runs with a point evaluated more than once
    crashed_runs: int
    crashes: int  # crashed workers, over all runs
    missing_mean: float
    extra_mean: float  # evaluations beyond one per grid point, per run
    lost_wilson95: tuple[float, float]

    @property
    def verdict(self) -> str:
        """exact | covers (no point lost, extra evaluations) | racy | loses-points."""
        if self.lost == 0 and self.crashed_runs == 0:
            return "exact" if self.duplicated == 0 else "covers"
        if self.lost == self.runs:
            return "loses-points"
        return "racy"


def _cell(
    strategy: Strategy, version: str, storages: Iterable[str], runs: Sequence[RunRecord]
) -> Cell:
    ok = [r for r in runs if r.error is None]
    n = len(ok)
    lost = sum(1 for r in ok if r.missing)
    low, high = wilson95(lost, n)
    return Cell(
        strategy=strategy,
        version=version,
        storages=tuple(s for s in ALL_STORAGES if s in set(storages)),
        runs=n,
        errors=len(runs) - n,
        lost=lost,
        duplicated=sum(1 for r in ok if r.duplicates),
        crashed_runs=sum(1 for r in ok if r.worker_crashes),
        crashes=sum(len(r.worker_crashes) for r in ok),
        missing_mean=round(sum(r.missing for r in ok) / n, 2) if n else 0.0,
        extra_mean=round(sum(r.duplicates for r in ok) / n, 2) if n else 0.0,
        lost_wilson95=(round(low, 2), round(high, 2)),
    )


Key = tuple[Strategy, str, str]  # strategy, version, storage


def _grouped(files: Sequence[ResultsFile]) -> dict[Key, list[RunRecord]]:
    """Matrix runs (not corpus cases) by strategy, version and storage."""
    out: dict[Key, list[RunRecord]] = {}
    for f in files:
        for run in f.runs:
            if run.case_id is None:
                out.setdefault((_strategy(run), f.optuna_version, run.storage), []).append(run)
    return out


def cells(files: Sequence[ResultsFile]) -> list[Cell]:
    """One cell per strategy, version and storage that has runs."""
    return [_cell(s, v, [storage], runs) for (s, v, storage), runs in _grouped(files).items()]


def families(files: Sequence[ResultsFile]) -> list[tuple[str, ...]]:
    """Storages grouped where every strategy got the same verdict on every version; a storage
    measured on fewer strategies than another is its own family."""
    verdicts: dict[str, dict[tuple[Strategy, str], str]] = {}
    for c in cells(files):
        verdicts.setdefault(c.storages[0], {})[(c.strategy, c.version)] = c.verdict
    groups: list[tuple[str, ...]] = []
    for storage in (s for s in ALL_STORAGES if s in verdicts):
        same = next((g for g in groups if verdicts[g[0]] == verdicts[storage]), None)
        if same is None:
            groups.append((storage,))
        else:
            groups[groups.index(same)] = (*same, storage)
    return groups


def pooled(
    files: Sequence[ResultsFile], storages: Sequence[str]
) -> dict[tuple[Strategy, str], Cell]:
    """One cell per strategy and version, pooled over ``storages``."""
    runs: dict[tuple[Strategy, str], list[RunRecord]] = {}
    for (strategy, version, storage), group in _grouped(files).items():
        if storage in storages:
            runs.setdefault((strategy, version), []).extend(group)
    return {
        (s, v): _cell(s, v, {r.storage for r in group}, group) for (s, v), group in runs.items()
    }


@dataclass(frozen=True)
class Advice:
    """What to change on one version: remedies measured exact in every launch mode and on
    every storage measured, and the others with their numbers."""

    version: str
    exact: tuple[str, ...]
    not_exact: tuple[tuple[str, Cell, tuple[str, ...]], ...]  # label, pooled cell, exact where


def advice(files: Sequence[ResultsFile]) -> list[Advice]:
    by_storage = cells(files)
    out = []
    for f in files:
        version = f.optuna_version
        per_remedy: dict[Strategy, list[Cell]] = {}
        for cell in by_storage:
            if cell.version == version:
                per_remedy.setdefault(_remedy_of(cell.strategy), []).append(cell)
        exact: list[str] = []
        not_exact: list[tuple[str, Cell, tuple[str, ...]]] = []
        for remedy in sorted(per_remedy, key=_rank):
            group = per_remedy[remedy]
            if all(c.verdict == "exact" for c in group):
                exact.append(remedy.remedy_label)
                continue
            total = _remedy_cell(f, remedy)
            not_exact.append((remedy.remedy_label, total, _exact_where(group)))
        out.append(Advice(version, tuple(exact), tuple(not_exact)))
    return out


def _remedy_cell(f: ResultsFile, remedy: Strategy) -> Cell:
    """One remedy on one version, pooled over launch modes and storages."""
    runs = [r for r in f.runs if r.case_id is None and _remedy_of(_strategy(r)) == remedy]
    return _cell(remedy, f.optuna_version, {r.storage for r in runs}, runs)


def derived(f: ResultsFile) -> dict[str, list[dict[str, Any]]]:
    """Every cell the report prints for one version, stored beside the runs (as the scenario
    summary is) so that every figure in the report is in the JSON: per strategy and storage,
    and per remedy pooled over launch modes and storages."""
    by_remedy = {_remedy_of(s) for s, _, _ in _grouped([f])}
    return {
        "by_storage": [asdict(c) for c in cells([f])],
        "by_remedy": [asdict(_remedy_cell(f, r)) for r in sorted(by_remedy, key=_rank)],
    }


def render_cells(found: Sequence[Cell]) -> str:
    """Remedy cells in one line each joined: verdict and numbers, or how to measure them."""
    if not found:
        return "not in these results: `python -m repro run --remedies all` measures it"
    return "; ".join(f"{c.strategy.remedy_label}: {c.verdict}, {_numbers(c)}" for c in found)


def remedy_cells(f: ResultsFile, remedies: Iterable[str]) -> list[Cell]:
    """The remedies named (``Scenario.remedy`` values) on one version, one cell per remedy and
    seed policy, pooled over launch modes and storages."""
    chosen = set(remedies)
    keys = {_remedy_of(_strategy(r)) for r in f.runs if r.case_id is None and r.remedy in chosen}
    return [_remedy_cell(f, key) for key in sorted(keys, key=_rank)]


def _exact_where(group: Sequence[Cell]) -> tuple[str, ...]:
    """Where a remedy that is not exact everywhere was: "sequential on every storage",
    "concurrent on postgresql, mysql"."""
    out = []
    for mode in sorted({c.strategy.mode for c in group}, key=MODE_ORDER.index):
        here = [c for c in group if c.strategy.mode == mode]
        exact = [c.storages[0] for c in here if c.verdict == "exact"]
        if len(exact) == len(here):
            out.append(f"{mode} on every storage")
        elif exact:
            out.append(f"{mode} on {', '.join(s for s in ALL_STORAGES if s in exact)}")
    return tuple(out)


def _remedy_of(strategy: Strategy) -> Strategy:
    """The strategy a user picks: threads stay their own remedy, process modes pool."""
    if strategy.mode == "threads":
        return strategy
    return Strategy(strategy.remedy, strategy.seed_policy, PROCESSES)


# Rendering: Markdown lines from the data above.


def _numbers(c: Cell) -> str:
    low, high = c.lost_wilson95
    text = (
        f"lost points in {c.lost}/{c.runs} runs (95% {low:.2f}-{high:.2f}), "
        f"mean missing {c.missing_mean:g}"
    )
    if c.extra_mean:
        text += f", mean duplicates {c.extra_mean:g}"
    if c.crashes:
        text += f", {c.crashes} crashed workers in {c.crashed_runs} runs"
    if c.errors:
        text += f", {c.errors} runs failed"
    return text


def not_applicable(remedy: str, version: str) -> str | None:
    """ "not applicable (from X)" when ``version`` predates what ``remedy`` needs, else None."""
    since = REMEDY_SINCE.get(remedy)  # type: ignore[call-overload]
    if since is not None and version_key(version) < version_key(since):
        return f"not applicable (from {since})"
    return None


def render_cell(c: Cell | None, strategy: Strategy | None = None, version: str = "") -> str:
    """Compact: verdict, lost/runs, Wilson interval, then what else happened; a missing cell
    says "not applicable" on a release without the remedy, else "not run"."""
    if c is None:
        missing = strategy and not_applicable(strategy.remedy, version)
        return missing or "not run"
    low, high = c.lost_wilson95
    parts = [f"**{c.verdict}** {c.lost}/{c.runs} ({low:.2f}-{high:.2f})"]
    if c.missing_mean:
        parts.append(f"missing {c.missing_mean:g}")
    if c.extra_mean:
        parts.append(f"dup {c.extra_mean:g}")
    if c.crashes:
        parts.append(f"{c.crashes} crashed")
    if c.errors:
        parts.append(f"{c.errors} failed")
    return " · ".join(parts)


def render_what_works(files: Sequence[ResultsFile]) -> list[str]:
    """The "What works on your version" section: remedy x version, per storage family."""
    versions = [f.optuna_version for f in files]
    out = [
        "## What works on your version",
        "",
        "Every remedy users are told about, measured per version and storage. "
        "**exact**: no run lost or repeated a point and no worker crashed; **covers**: no "
        "point lost, some evaluated twice; **racy**: some runs lost points or a worker "
        "crashed; **loses-points**: every run lost points. The interval is the Wilson 95% "
        "interval of the share of runs that lost points. Storages share a table where every "
        "verdict agrees. A cell reads: verdict, runs that lost points / runs (Wilson 95% "
        "interval of that share), mean missing points, mean duplicate evaluations, crashed "
        "workers.",
        "",
    ]
    for family in families(files):
        table = pooled(files, family)
        strategies = sorted({s for s, _ in table}, key=_rank)
        kind = "Storage" if len(family) == 1 else "Storages"
        out += [
            f"### {kind}: {', '.join(family)}",
            "",
            "| remedy | " + " | ".join(versions) + " |",
            "|---|" + "---|" * len(versions),
        ]
        out += [
            f"| {s.label} | "
            + " | ".join(render_cell(table.get((s, v)), s, v) for v in versions)
            + " |"
            for s in strategies
        ]
        out.append("")
    return out


def render_what_to_do(item: Advice) -> str:
    """The summary's "what to do" for one version: only remedies measured exact are named as
    fixes; the others follow with their numbers."""
    if item.exact:
        text = "Measured exact: " + "; ".join(item.exact) + "."
    else:
        text = "No remedy was measured exact."
    for label, cell, where in item.not_exact:
        exact_in = f" (exact {'; '.join(where)})" if where else ""
        text += f" {label}: {cell.verdict}{exact_in}, {_numbers(cell)}."
    return text


def render_advice_cell(f: ResultsFile, remedies: Iterable[str]) -> str:
    """One cell of the report's advice table: the named remedies on one version, each with
    its verdict and numbers (e.g. ``("x1.5", "x2")`` for "run a few more trials",
    ``("bruteforce", "enqueued")`` for "use another sampler")."""
    return render_cells(remedy_cells(f, remedies))


def what_to_do(files: Sequence[ResultsFile]) -> dict[str, str]:
    """Per version, the summary's "what to do" cell."""
    return {item.version: render_what_to_do(item) for item in advice(files)}
