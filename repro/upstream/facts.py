"""What the upstream issue, its attachment and the pull request say, decided as plain data from
the JSON files alone.

``gather`` reads the per-version results, the timeline, the recorded run of the minimal
reproduction and, when present, the remedies, the patched targets with upstream's tests (the
candidate fix and the alternatives) and the rolling upgrades; ``premise`` says whether the
newest release still loses grid points with a distinct seed per worker. Every number kept here
is a field of those files or of the alternatives' JSON written beside the pull request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro import results, targets, upstream_tests
from repro.errors import ReproError
from repro.jsonfile import load_json
from repro.results import ResultsFile, RunRecord, ScenarioSummary, summarize
from repro.timeline import records as timeline_records
from repro.upstream import alternatives as alternatives_mod
from repro.upstream import script_run
from repro.upstream_tests import UpstreamTests

PROCESS_MODES = ("sequential", "concurrent")
REMEDY_LABELS = {
    "bruteforce": "`BruteForceSampler` instead of `GridSampler`",
    "bruteforce-strict": "`BruteForceSampler(avoid_premature_stop=True)` instead",
    "enqueued": "the whole grid enqueued once (`study.enqueue_trial`), workers popping it",
}
UPSTREAM_TESTS = upstream_tests.FILENAME
ROLLING = "rolling.json"
TARGET_DIRS = "target-*"


class PremiseError(ReproError):
    """The measurements needed to decide the issue are missing."""


@dataclass(frozen=True)
class Column:
    """One column of the per-storage table: a (version, mode, seed policy)."""

    version: str
    mode: str
    seed_policy: str


@dataclass(frozen=True)
class Example:
    """One grid point of one run evaluated by several trials, with who evaluated it."""

    scenario: str
    repetition: int
    params: dict[str, Any]
    trials: list[tuple[int, int, Any]]  # (trial number, worker index, that worker's seed)
    missing: int
    duplicates: int
    worker_orders_distinct: int
    workers: int


@dataclass(frozen=True)
class Transition:
    seed_policy: str
    from_version: str
    to_version: str
    from_outcome: str
    to_outcome: str


@dataclass(frozen=True)
class Remedy:
    name: str  # bruteforce | enqueued | x1.5 | ...
    rows: list[ScenarioSummary]  # the newest release, per (mode, seed policy, storage)


@dataclass(frozen=True)
class Fix:
    """The candidate fix: the patched build's measurements and upstream's tests on both."""

    label: str
    spec: str
    patches: list[targets.PatchRecord]
    rows: list[ScenarioSummary]  # distinct seeds per worker, per mode and storage
    tests: list[UpstreamTests]
    diff: str  # the patches' text, "" when no patch file could be read


@dataclass(frozen=True)
class RollingCase:
    older: str
    newer: str
    creator: str
    seed_policy: str
    mode: str
    storage: str
    outcome: str
    missing: int
    duplicates: int
    refusal: str | None


@dataclass(frozen=True)
class Facts:
    newest: ResultsFile
    oldest: ResultsFile
    storages: list[str]
    columns: list[Column]
    cells: dict[tuple[str, Column], ScenarioSummary]
    grid_size: int
    workers: int
    trials_per_worker: int
    search_space: list[list[Any]]
    example: Example | None
    script: script_run.ScriptRecord
    transitions: list[Transition]
    # Per seed policy, the timeline's releases where sequential workers lost points.
    losing: dict[str, list[str]]
    measured_releases: list[str]
    remedies: list[Remedy] = field(default_factory=list)
    fix: Fix | None = None
    rolling: list[RollingCase] = field(default_factory=list)
    alternatives: alternatives_mod.Alternatives | None = None
    sources: list[Path] = field(default_factory=list)  # every JSON file read
    notes: list[str] = field(default_factory=list)  # sections left out, for the session's output

    @property
    def version(self) -> str:
        return self.newest.optuna_version


def matrix_runs(f: ResultsFile) -> list[RunRecord]:
    """The runs of the plain GridSampler matrix: no corpus case, no remedy."""
    return [r for r in f.runs if r.in_matrix]


def premise(newest: ResultsFile) -> str | None:
    """None when the newest release loses grid points with a distinct seed per worker (worker
    processes one after another or at once); otherwise why the issue would be wrong."""
    rows = [
        s
        for s in summarize(matrix_runs(newest))
        if s.seed_policy == "per-worker" and s.mode in PROCESS_MODES and s.runs
    ]
    if not rows:
        return (
            f"Optuna {newest.optuna_version}: no run with a distinct seed per worker was "
            "measured, so there is nothing to report"
        )
    if not any(s.runs_with_missing for s in rows):
        runs = ", ".join(f"{s.scenario} 0/{s.runs}" for s in rows)
        return (
            f"Optuna {newest.optuna_version} no longer loses grid points with a distinct seed "
            f"per worker (runs that lost points: {runs})"
        )
    return None


def script_premise(record: script_run.ScriptRecord) -> str | None:
    """None when the recorded reproduction lost points; otherwise why quoting it would be
    wrong."""
    if any(o.missing for o in record.outputs):
        return None
    return (
        f"the recorded runs of {record.script} on Optuna {record.optuna} lost no grid point; "
        "check the script, then record it again with `nox -s upstream_record`"
    )


def _columns(newest: str) -> list[Column]:
    """The issue's table: the newest release, each seed policy in both process modes."""
    return [
        Column(newest, mode, policy)
        for policy in ("per-worker", "shared", "none")
        for mode in PROCESS_MODES
    ]


def _example(newest: ResultsFile) -> Example | None:
    """The first sequential distinct-seed run's first point evaluated more than once."""
    for run in matrix_runs(newest):
        if run.mode != "sequential" or run.seed_policy != "per-worker" or not run.missing:
            continue
        seeds = {w["index"]: w.get("seed") for w in run.worker_results}
        seen: dict[str, list[dict[str, Any]]] = {}
        for trial in run.trial_log:
            if trial["state"] == "COMPLETE":
                key = repr(sorted(trial["params"].items()))
                seen.setdefault(key, []).append(trial)
        for trials in seen.values():
            if len(trials) > 1:
                return Example(
                    run.scenario,
                    run.repetition,
                    dict(trials[0]["params"]),
                    [(t["number"], t["worker"], seeds.get(t["worker"])) for t in trials],
                    run.missing,
                    run.duplicates,
                    run.worker_orders_distinct,
                    run.workers,
                )
    return None


def _timeline(
    results_dir: Path,
) -> tuple[list[Transition], dict[str, list[str]], list[str], Path | None]:
    path = results_dir / timeline_records.FILENAME
    if not path.exists():
        return [], {}, [], None
    timeline = timeline_records.load(path)
    transitions = [
        Transition(t.seed_policy, t.from_version, t.to_version, t.from_outcome, t.to_outcome)
        for t in timeline.transitions
        if t.mode == "sequential"
    ]
    measured = [r.version for r in timeline.versions if r.measured]
    losing: dict[str, list[str]] = {}
    for release in timeline.versions:
        for o in timeline_records.outcomes(release.version, release.runs):
            if o.mode == "sequential" and o.runs_with_missing:
                losing.setdefault(o.seed_policy, []).append(release.version)
    return transitions, losing, measured, path


def _remedies(newest: ResultsFile) -> list[Remedy]:
    groups: dict[str, list[RunRecord]] = {}
    for run in newest.runs:
        if run.case_id is None and run.remedy != "grid":
            groups.setdefault(run.remedy, []).append(run)
    return [Remedy(name, summarize(runs)) for name, runs in sorted(groups.items())]


def _diff(patches: list[targets.PatchRecord]) -> str:
    """The patches' text, "" when a patch file cannot be read."""
    paths = [targets.patch_path(p) for p in patches]
    if not all(path.is_file() for path in paths):
        return ""
    return "".join(path.read_text(encoding="utf-8") for path in paths)


def _not_proposed(directory: Path) -> bool:
    """Sorts the proposed patch's target first."""
    provenance = targets.read_provenance(directory)
    names = [Path(p.path).name for p in provenance.patches] if provenance else []
    return names != [alternatives_mod.PROPOSED]


def _fix(results_dir: Path, sources: list[Path]) -> Fix | None:
    """The proposed patch's target (else the first patched target) with results, and
    upstream's tests when they were run."""
    for directory in sorted(results_dir.glob(TARGET_DIRS), key=_not_proposed):
        target_file = directory / "target.json"
        files = sorted(directory.glob("optuna-*.json"))
        provenance = targets.read_provenance(directory)
        if provenance is None or not files or not provenance.patches:
            continue
        runs = [r for f in results.load_all(directory) for r in matrix_runs(f)]
        rows = [s for s in summarize(runs) if s.seed_policy == "per-worker"]
        tests_path = results_dir / UPSTREAM_TESTS
        tests = upstream_tests.load(tests_path) if tests_path.exists() else []
        sources += [target_file, *files] + ([tests_path] if tests else [])
        patches = provenance.patches
        return Fix(provenance.label, provenance.spec, patches, rows, tests, _diff(patches))
    return None


def _rolling(path: Path, newest: str) -> list[RollingCase]:
    data = load_json(path, schema=1)
    return [
        RollingCase(
            c["older"],
            c["newer"],
            c["creator"],
            c["seed_policy"],
            c["mode"],
            c["storage"],
            c["outcome"],
            c["missing"],
            c["duplicates"],
            c.get("refusal"),
        )
        for c in data["cases"]
        if newest in (c["older"], c["newer"])
    ]


def gather(results_dir: Path) -> Facts:
    """Everything the issue says, from the JSON files in ``results_dir``."""
    files = results.load_all(results_dir)
    if not files:
        raise PremiseError(f"{results_dir}: no optuna-*.json results; run `nox -s repro` first")
    newest, oldest = files[-1], files[0]
    sources = sorted(results_dir.glob("optuna-*.json"))
    notes: list[str] = []

    columns = _columns(newest.optuna_version)
    summaries = {f.optuna_version: summarize(matrix_runs(f)) for f in files}
    cells: dict[tuple[str, Column], ScenarioSummary] = {}
    storages: list[str] = []
    for column in columns:
        for s in summaries.get(column.version, []):
            if s.mode == column.mode and s.seed_policy == column.seed_policy:
                cells[(s.storage, column)] = s
                if s.storage not in storages:
                    storages.append(s.storage)
    first = matrix_runs(newest)[0]

    script = script_run.load(results_dir)
    if script.optuna != newest.optuna_version:
        raise PremiseError(
            f"{script_run.record_path(results_dir)}: recorded on Optuna {script.optuna}, the "
            f"newest results are {newest.optuna_version}; record it again with "
            "`nox -s upstream_record`"
        )
    sources.append(script_run.record_path(results_dir))

    transitions, losing, measured, timeline_path = _timeline(results_dir)
    if timeline_path:
        sources.append(timeline_path)
    else:
        notes.append(f"no {timeline_records.FILENAME}: the release history is left out")

    remedies = _remedies(newest)
    if not remedies:
        notes.append(
            f"no remedy scenarios (-bruteforce, -enqueued, -x1.5) in optuna-{newest.optuna_version}"
            ".json: the measured remedies are left out"
        )
    fix = _fix(results_dir, sources)
    if fix is None:
        notes.append(
            f"no patched target results ({TARGET_DIRS}/optuna-*.json): the candidate fix is "
            "left out"
        )
    else:
        if not fix.tests:
            notes.append(f"no {UPSTREAM_TESTS}: upstream's tests against the fix are left out")
        if not fix.diff:
            notes.append(f"the patch of {fix.label} cannot be read: its text is left out")
    alternatives = alternatives_mod.decide(results_dir, newest)
    if alternatives is not None:
        for row in alternatives.rows:
            read = results_dir / row.source
            sources.append(read)
            if read.parent != results_dir:
                sources.append(read.parent / "target.json")
        if (results_dir / UPSTREAM_TESTS).exists():
            sources.append(results_dir / UPSTREAM_TESTS)
    rolling_path = results_dir / ROLLING
    rolling = _rolling(rolling_path, newest.optuna_version) if rolling_path.exists() else []
    if rolling:
        sources.append(rolling_path)
    else:
        notes.append(f"no {ROLLING} cases with {newest.optuna_version}: rolling upgrades left out")

    return Facts(
        newest=newest,
        oldest=oldest,
        storages=storages,
        columns=columns,
        cells=cells,
        grid_size=first.grid_size,
        workers=first.workers,
        trials_per_worker=first.trials_per_worker,
        search_space=first.search_space,
        example=_example(newest),
        script=script,
        transitions=transitions,
        losing=losing,
        measured_releases=measured,
        remedies=remedies,
        fix=fix,
        rolling=rolling,
        alternatives=alternatives,
        sources=sorted(set(sources)),
        notes=notes,
    )
