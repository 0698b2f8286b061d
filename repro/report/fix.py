"""The candidate fix, decided as plain data: what its patch changes (read from the patch's
hunks), what each target measured (the release, the patched build, any other build such as the
development head), upstream's own tests per target, and how sure "exact" is.

Targets are the ``results/target-<label>/`` directories ``nox -s target`` writes. A release
target that measured no matrix of its own is the release's ``results/optuna-<version>.json``.
No Markdown here: ``render_fix.py`` formats these records.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from math import comb
from pathlib import Path

from repro import expectations, results, targets, upstream_tests
from repro.corpus import records
from repro.expectations import Expectation
from repro.report.verdicts import PROCESS_MODES, Tally
from repro.results import ResultsFile, RunRecord, ScenarioSummary, summarize
from repro.scenarios import MODES, SEED_POLICIES
from repro.targets import PatchRecord, Provenance
from repro.upstream_tests import UpstreamTests
from repro.versions import version_key

TARGET_DIRS = "target-*"
UPSTREAM_TESTS = "upstream-tests.json"
HUNK = re.compile(r"@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")


@dataclass(frozen=True)
class Change:
    """One run of removed and added lines in a patch, with their line numbers: ``removed``
    start at ``old_first`` of the unpatched file, ``added`` at ``new_first`` of the patched
    one; ``after`` is the unpatched line just before the change."""

    path: str
    after: int
    old_first: int
    removed: tuple[str, ...]
    new_first: int
    added: tuple[str, ...]


@dataclass(frozen=True)
class Patch:
    record: PatchRecord
    # The file's sha256 now; when it differs from the recorded one the file is not what was
    # measured, and its changes are not reported as the fix's.
    sha256: str | None
    changes: tuple[Change, ...]
    hunks: str  # the diff without its header, for the details file
    # The release whose files the hunks' line numbers count ("Against Optuna X." in the
    # header); a build of a later release applies them at an offset, so links use this one.
    base: str | None = None

    @property
    def as_measured(self) -> bool:
        return self.sha256 == self.record.sha256


@dataclass(frozen=True)
class CorpusPolicy:
    """Corpus cases of one seed policy where the property failed, out of those that
    finished; ``crashed``: cases that crashed (errors, known faults, unprobed)."""

    seed_policy: str
    fails: int
    measured: int
    crashed: int


@dataclass(frozen=True)
class TargetResult:
    label: str
    provenance: Provenance | None  # None: a release with no target.json
    measured_in: str  # the results file of its matrix runs, relative to the results dir
    storages: tuple[str, ...]
    matrix: tuple[tuple[str, str, Tally], ...]  # (mode, seed policy, runs that lost points)
    duplicated: int  # matrix runs with a duplicate evaluation
    orders_max: int  # the most distinct grid orders among one run's workers
    contradicted: tuple[tuple[str, int], ...]  # (scenario, repetition) against its row
    scenarios: tuple[ScenarioSummary, ...]
    corpus: tuple[CorpusPolicy, ...]  # empty when its corpus was not replayed
    tests: UpstreamTests | None

    @property
    def total(self) -> Tally:
        out = Tally(0, 0)
        for _, _, tally in self.matrix:
            out += tally
        return out

    @property
    def corpus_total(self) -> CorpusPolicy:
        return CorpusPolicy(
            "all",
            sum(c.fails for c in self.corpus),
            sum(c.measured for c in self.corpus),
            sum(c.crashed for c in self.corpus),
        )


@dataclass(frozen=True)
class Bound:
    """How likely a build whose workers still shuffle with their own seeds (as the release
    does) would look exact anyway: each of its runs with distinct seeds and one worker per
    process would have to cover the grid by chance."""

    per_run: float  # the largest such probability of one run, from its grid and workers
    grid_size: int
    workers: int
    trials_per_worker: int
    scenarios: int
    runs_each: int  # the fewest runs of one of those scenarios
    # Union over the scenarios of all their runs covering the grid: the chance that even one
    # scenario's cells would read exact for such a build.
    any_scenario: float


@dataclass(frozen=True)
class FixFindings:
    release: str
    fix: TargetResult
    targets: tuple[TargetResult, ...]  # the release, the fix, then the others by label
    row: Expectation | None  # the fix's expectation row (expectations.TARGET_ROWS)
    patches: tuple[Patch, ...]
    bound: Bound | None
    tests_command: str

    @property
    def exact_everywhere(self) -> bool:
        """Every matrix run exact and the corpus property held in every case."""
        corpus = self.fix.corpus_total
        return (
            self.fix.total.runs > 0
            and self.fix.total.lost == 0
            and self.fix.duplicated == 0
            and not self.fix.contradicted
            and corpus.measured > 0
            and corpus.fails == 0
            and corpus.crashed == 0
        )


def coverage_probability(grid_size: int, workers: int, trials_each: int) -> Fraction:
    """The chance that ``workers`` independent uniform ``trials_each``-subsets of a grid cover
    all of it (inclusion-exclusion over the points left out); exact, as a fraction."""
    total = comb(grid_size, trials_each)
    return sum(
        (
            (-1) ** j
            * comb(grid_size, j)
            * Fraction(comb(grid_size - j, trials_each), total) ** workers
            for j in range(grid_size + 1)
        ),
        Fraction(0),
    )


def read_changes(text: str) -> tuple[tuple[Change, ...], str]:
    """The changes of a unified diff and its hunks without the header before them."""
    changes: list[Change] = []
    path = ""
    lines = text.splitlines()
    first_hunk = next((i for i, line in enumerate(lines) if line.startswith("--- ")), len(lines))
    old = new = 0
    removed: list[str] = []
    added: list[str] = []
    start = (0, 0)

    def close() -> None:
        if removed or added:
            changes.append(
                Change(path, start[0] - 1, start[0], tuple(removed), start[1], tuple(added))
            )
        removed.clear()
        added.clear()

    for line in lines[first_hunk:]:
        if line.startswith("+++ "):
            path = line[4:].split("/", 1)[-1] if line[4:].startswith("b/") else line[4:]
            continue
        if line.startswith("--- "):
            continue
        hunk = HUNK.match(line)
        if hunk:
            close()
            old, new = int(hunk.group(1)), int(hunk.group(2))
            continue
        if line.startswith("-"):
            if not (removed or added):
                start = (old, new)
            removed.append(line[1:])
            old += 1
        elif line.startswith("+"):
            if not (removed or added):
                start = (old, new)
            added.append(line[1:])
            new += 1
        else:
            close()
            old, new = old + 1, new + 1
    close()
    return tuple(changes), "\n".join(lines[first_hunk:]) + "\n"


def _patch(record: PatchRecord) -> Patch:
    path = targets.patch_path(record)
    if not path.is_file():
        return Patch(record, None, (), "")
    text = path.read_text(encoding="utf-8")
    changes, hunks = read_changes(text)
    header = text.split("\ndiff --git ", 1)[0]
    based = re.search(r"\bAgainst Optuna (\d+(?:\.\d+)+)", header)
    return Patch(record, targets.sha256_of(path), changes, hunks, based[1] if based else None)


def _corpus(directory: Path, version: str) -> tuple[CorpusPolicy, ...]:
    """Per seed policy, as the replay stored it (``judge.tally``)."""
    side = records.load(records.path_for(directory, version))
    if side is None:
        return ()
    return tuple(
        CorpusPolicy(
            row["seed_policy"],
            row["fails"],
            row["measured"],
            row["errors"] + row["known_faults"] + row["unprobed"],
        )
        for row in side.summary.get("by_policy", [])
    )


def _target(
    label: str,
    provenance: Provenance | None,
    f: ResultsFile,
    measured_in: str,
    corpus: tuple[CorpusPolicy, ...],
    tests: dict[str, UpstreamTests],
) -> TargetResult | None:
    runs = [r for r in f.runs if r.in_matrix]
    if not runs:
        return None
    finished = [r for r in runs if r.error is None]
    matrix = []
    for mode in MODES:
        for policy in SEED_POLICIES:
            group = [r for r in finished if (r.mode, r.seed_policy) == (mode, policy)]
            if group:
                matrix.append((mode, policy, Tally(sum(1 for r in group if r.missing), len(group))))
    return TargetResult(
        label=label,
        provenance=provenance,
        measured_in=measured_in,
        storages=tuple(dict.fromkeys(r.storage for r in runs)),
        matrix=tuple(matrix),
        duplicated=sum(1 for r in finished if r.duplicates),
        orders_max=max((r.worker_orders_distinct for r in finished), default=0),
        contradicted=_contradicted(runs, f.optuna_version, label),
        scenarios=tuple(summarize(runs)),
        corpus=corpus,
        tests=tests.get(label),
    )


def _contradicted(
    runs: Sequence[RunRecord], version: str, label: str
) -> tuple[tuple[str, int], ...]:
    out = []
    for r in runs:
        row = expectations.expected(version, r.mode, r.seed_policy, target=label)
        if expectations.violations(r, version, row):
            out.append((r.scenario, r.repetition))
    return tuple(out)


def _bound(runs: Sequence[RunRecord]) -> Bound | None:
    """Over the fix's runs with a distinct seed per worker, one worker per process."""
    exposed = [
        r
        for r in runs
        if r.in_matrix
        and r.error is None
        and r.seed_policy == "per-worker"
        and r.mode in PROCESS_MODES
    ]
    if not exposed:
        return None
    by_scenario: dict[str, list[RunRecord]] = {}
    for r in exposed:
        by_scenario.setdefault(r.scenario, []).append(r)
    chances = {
        r.scenario: coverage_probability(r.grid_size, r.workers, r.trials_per_worker)
        for r in exposed
    }
    worst = max(exposed, key=lambda r: chances[r.scenario])
    any_scenario = sum((chances[s] ** len(group) for s, group in by_scenario.items()), Fraction(0))
    return Bound(
        per_run=float(chances[worst.scenario]),
        grid_size=worst.grid_size,
        workers=worst.workers,
        trials_per_worker=worst.trials_per_worker,
        scenarios=len(by_scenario),
        runs_each=min(len(group) for group in by_scenario.values()),
        any_scenario=float(any_scenario),
    )


def _measured(
    results_dir: Path, directory: Path, version: str | None = None
) -> tuple[ResultsFile, str, tuple[CorpusPolicy, ...]] | None:
    """The newest results file in ``directory`` (or the one of ``version``), its name relative
    to ``results_dir``, and its corpus replay per seed policy."""
    files = [f for f in results.load_all(directory) if version in (None, f.optuna_version)]
    if not files:
        return None
    f = files[-1]
    shown = results.results_path(directory, f.optuna_version).relative_to(results_dir)
    return f, str(shown), _corpus(directory, f.optuna_version)


def decide(results_dir: Path) -> FixFindings | None:
    """The newest release's first patched target with matrix runs (by label), beside that
    release and every other target; None when no patched build was measured. Targets of an
    older release stay in the tables, but the fix, its release column, the lines its patch
    touches and the summary's word are all the newest release's."""
    tests_path = results_dir / UPSTREAM_TESTS
    tests = {t.label: t for t in upstream_tests.load(tests_path)} if tests_path.exists() else {}
    found: dict[str, TargetResult] = {}
    provenances: dict[str, Provenance] = {}
    runs: dict[str, list[RunRecord]] = {}
    for directory in sorted(results_dir.glob(TARGET_DIRS)):
        provenance = targets.read_provenance(directory)
        if provenance is None:
            continue
        provenances[provenance.label] = provenance
        measured = _measured(results_dir, directory)
        result = _target(provenance.label, provenance, *measured, tests) if measured else None
        if measured and result:
            found[provenance.label] = result
            runs[provenance.label] = measured[0].runs
    patched = [(t, t.provenance) for t in found.values() if t.provenance and t.provenance.patches]
    if not patched:
        return None
    release = max((p.optuna_version for _, p in patched), key=version_key)
    fix, fix_provenance = next((t, p) for t, p in patched if p.optuna_version == release)
    # A release measured by the pinned environments: its results file beside the others.
    own = _measured(results_dir, results_dir, release) if release not in found else None
    result = _target(release, provenances.get(release), *own, tests) if own else None
    if result:
        found[release] = result
    ordered = [found[release]] if release in found else []
    ordered += [
        fix,
        *(found[label] for label in sorted(found) if found[label] not in (fix, *ordered)),
    ]
    return FixFindings(
        release=release,
        fix=fix,
        targets=tuple(ordered),
        row=next((r for r in expectations.TARGET_ROWS if r.target == fix.label), None),
        patches=tuple(_patch(p) for p in fix_provenance.patches),
        bound=_bound(runs[fix.label]),
        tests_command=next((t.command for t in tests.values()), ""),
    )
