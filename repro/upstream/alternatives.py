"""The designs a reviewer may ask about, measured on one matrix and one corpus, as plain data.

Rows: the release as it is; a documentation-only change (every process passes one seed: the
release's shared-seed runs); and every patched target of the release under ``results/``
(``target-<release>+<patch>/``), the proposed patch among them. Per row: runs that lost a grid
point or evaluated one twice, per seed policy and launch mode, pooled over storages; corpus
cases (those every row replayed) that lost a point, per seed policy; whether one seed gives one
order, and the release's order; upstream's tests against the release's. ``decide`` returns the
rows; ``to_json`` is what ``bundle`` writes beside the pull request, so every number its
description prints is in a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from repro import results, targets, upstream_tests
from repro.results import ResultsFile, RunRecord
from repro.scenarios import MODES, SEED_POLICIES, SHARED_SEED
from repro.upstream_tests import Difference, UpstreamTests

PROPOSED = "grid-shared-order.patch"
RELEASE = "release"
DOCS_ONLY = "docs-only"
# What each design is, and what it changes for people who use GridSampler today. Keyed by
# patch file name; a patch not listed here is shown by its name alone.
DESIGNS: dict[str, tuple[str, str]] = {
    RELEASE: ("the release as it is", "nothing"),
    DOCS_ONLY: (
        "documentation only: every process passes the same seed",
        "no code change; distributed users must learn that GridSampler, unlike the other "
        "samplers, needs one seed (or none) in every process, and processes with different "
        "seeds keep losing points silently",
    ),
    PROPOSED: (
        "grid order derived from the search space (this pull request)",
        "two different seeds no longer give two different orders of the first len(grid) "
        "trials, and a seed's order differs from the release's; no storage access is added; "
        "a study started before the upgrade and resumed after it maps its grid ids to other "
        "points",
    ),
    "grid-study-order.patch": (
        "grid order kept in the study (a study system attr holding the first seed)",
        "a new study system attr in every study GridSampler samples, and one more storage "
        "read per trial; a seed's order stays the release's; processes that start at the same "
        "moment race on the attr (storages offer no compare-and-set for it)",
    ),
}


@dataclass(frozen=True)
class Tally:
    """Runs pooled over storages: how many, how many lost a point, how many repeated one."""

    runs: int
    lost: int
    duplicated: int

    @property
    def exact(self) -> bool:
        return self.runs > 0 and self.lost == 0 and self.duplicated == 0


@dataclass(frozen=True)
class TestCounts:
    """Upstream's tests on one build: counts, and where they differ from the release's."""

    passed: int
    failed: int
    skipped: int
    differences: list[Difference]
    added: list[str]  # the differing tests that the build's patch adds (``+def test_...``)


@dataclass(frozen=True)
class Row:
    key: str  # RELEASE, DOCS_ONLY or a patch file name
    label: str  # a target label, or the release
    design: str
    changes: str
    source: str  # the results file measured, relative to the results directory
    matrix: dict[str, dict[str, Tally]]  # seed policy -> mode -> runs
    corpus: dict[str, Tally]  # seed policy -> corpus cases (one run each)
    orders_max: int  # most grid orders among one shared-seed run's workers
    release_order: bool | None  # seed SHARED_SEED gives the release's order; None: unknown
    tests: TestCounts | None = None

    @property
    def exact_everywhere(self) -> bool:
        cells = [t for modes in self.matrix.values() for t in modes.values()]
        return bool(cells) and all(t.exact for t in cells)


@dataclass(frozen=True)
class Alternatives:
    release: str
    corpus_cases: int  # cases every row replayed, spaces whose values collapse left out
    rows: list[Row]
    recommended: str | None  # a row key
    # Upstream tests that failed on every build run, counted by the first line of their
    # message: what the environment lacks, not what a patch changed.
    failing_everywhere: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _tally(runs: Sequence[RunRecord]) -> Tally:
    ok = [r for r in runs if r.error is None]
    return Tally(len(ok), sum(1 for r in ok if r.missing), sum(1 for r in ok if r.duplicates))


def _matrix(f: ResultsFile, policies: Sequence[str] = SEED_POLICIES) -> dict[str, dict[str, Tally]]:
    out: dict[str, dict[str, Tally]] = {}
    for policy in policies:
        for mode in MODES:
            runs = [r for r in f.runs if r.in_matrix and (r.seed_policy, r.mode) == (policy, mode)]
            if runs:
                out.setdefault(policy, {})[mode] = _tally(runs)
    return out


def collapses(run: RunRecord) -> bool:
    """A search space with two values of one parameter that compare equal (0 and False, 1.0
    and True): Optuna stores them as one, so such a case loses a point on every build."""
    return any(
        a == b
        for _, values in run.search_space
        for i, a in enumerate(values)
        for b in values[i + 1 :]
    )


def _cases(f: ResultsFile) -> dict[str, RunRecord]:
    """Corpus cases run under GridSampler without error, by case id."""
    return {r.case_id: r for r in f.runs if r.case_id and r.remedy == "grid" and r.error is None}


def _corpus(
    f: ResultsFile, ids: set[str], policies: Sequence[str] = SEED_POLICIES
) -> dict[str, Tally]:
    cases = [run for case, run in _cases(f).items() if case in ids]
    return {
        p: _tally([r for r in cases if r.seed_policy == p])
        for p in policies
        if any(r.seed_policy == p for r in cases)
    }


def _fingerprints(f: ResultsFile) -> set[str]:
    """The grid orders workers given seed SHARED_SEED had."""
    return {
        w["order_fingerprint"]
        for r in f.runs
        if r.in_matrix and r.seed_policy == "shared"
        for w in r.worker_results
        if w.get("seed") == SHARED_SEED and w.get("order_fingerprint")
    }


def _orders_max(f: ResultsFile) -> int:
    shared = [r.worker_orders_distinct for r in f.runs if r.in_matrix and r.seed_policy == "shared"]
    return max(shared, default=0)


def _patched(results_dir: Path, release: str) -> list[tuple[str, str, Path, ResultsFile, str]]:
    """(patch file name, label, results file, its results, the patch's text or "") of each
    one-patch target of the release."""
    out = []
    for directory in sorted(results_dir.glob(f"target-{release}+*")):
        provenance = targets.read_provenance(directory)
        path = results.results_path(directory, release)
        if provenance is None or len(provenance.patches) != 1 or not path.exists():
            continue
        name = Path(provenance.patches[0].path).name
        patch = targets.patch_path(provenance.patches[0])
        text = patch.read_text(encoding="utf-8") if patch.is_file() else ""
        out.append((name, provenance.label, path, results.load(path), text))
    return out


def decide(results_dir: Path, release: ResultsFile) -> Alternatives | None:
    """The rows, or None when no patched target of the newest release was measured."""
    version = release.optuna_version
    patched = _patched(results_dir, version)
    if not patched:
        return None
    tests_path = results_dir / upstream_tests.FILENAME
    tests = {t.label: t for t in upstream_tests.load(tests_path)} if tests_path.exists() else {}
    ids = {case for case, run in _cases(release).items() if not collapses(run)}
    for _, _, _, f, _ in patched:
        ids &= set(_cases(f))
    release_prints = _fingerprints(release)
    release_tests = tests.get(version)
    source = results.results_path(results_dir, version).relative_to(results_dir).as_posix()

    def row(
        key: str, label: str, path: str, f: ResultsFile, policies: Sequence[str], patch: str = ""
    ) -> Row:
        design, changes = DESIGNS.get(key, (key, ""))
        found = tests.get(label)
        prints = _fingerprints(f)
        return Row(
            key=key,
            label=label,
            design=design,
            changes=changes,
            source=path,
            matrix=_matrix(f, policies),
            corpus=_corpus(f, ids, policies),
            orders_max=_orders_max(f),
            release_order=(prints == release_prints) if prints and release_prints else None,
            tests=_counts(found, release_tests, patch),
        )

    rows = [
        row(RELEASE, version, source, release, SEED_POLICIES),
        row(DOCS_ONLY, version, source, release, ("shared",)),
        *(
            row(name, label, path.relative_to(results_dir).as_posix(), f, SEED_POLICIES, text)
            for name, label, path, f, text in patched
        ),
    ]
    measured = [tests[r.label] for r in rows if r.label in tests]
    return Alternatives(version, len(ids), rows, _recommend(rows), _everywhere(measured))


def _everywhere(runs: Sequence[UpstreamTests]) -> dict[str, int]:
    if not runs:
        return {}
    failing = set.intersection(*(set(t.not_passed) for t in runs))
    counts: dict[str, int] = {}
    for test in sorted(failing):
        message = runs[0].messages.get(test, "")
        counts[message] = counts.get(message, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _counts(
    found: UpstreamTests | None, release: UpstreamTests | None, patch: str
) -> TestCounts | None:
    if found is None:
        return None
    differences = upstream_tests.compare(release, found) if release is not None else []
    added = [d.test for d in differences if f"+def {test_function(d.test)}(" in patch]
    return TestCounts(found.passed, found.failed, found.skipped, differences, added)


def test_function(test: str) -> str:
    """The function of a pytest id: ``path.py::Class::test_x[param]`` -> ``test_x``."""
    return test.split("::")[-1].split("[")[0]


def _recommend(rows: Sequence[Row]) -> str | None:
    """The proposed patch, when it is exact under every seed policy and mode and no upstream
    test does worse on it than on the release; else none."""
    proposed = next((r for r in rows if r.key == PROPOSED), None)
    if proposed is None or not proposed.exact_everywhere or proposed.tests is None:
        return None
    worse = [d for d in proposed.tests.differences if d.patched != upstream_tests.PASSED]
    return None if worse else proposed.key
