"""The expected behaviour of GridSampler per Optuna version range, as data.

Each row says what the code at those releases forces, and cites the code. Tests assert it
against fresh measurements, the report prints it next to the measured numbers, and nothing
else in the package decides what "correct" means.

Outcomes:
- ``exact``: every grid point evaluated exactly once, in every run. Forced by the code: the
  workers agree on what each grid id means and ids are handed out once each.
- ``loses-points``: in every run some grid points are never evaluated although every grid id is
  marked visited; all duplicates come from different grid ids that map to the same values
  (``same_id_duplicates == 0``), and every worker has its own grid order. Forced up to the
  chance that independent shuffles still partition the grid, 7.0e-9 per run on the default
  24-point grid with 4 workers (see scenarios.DEFAULT_SPACE).
- ``racy``: workers agree on the grid order, so no colliding ids; a grid id can still be picked
  twice when two workers read the storage before either writes its pick (optuna/optuna#4627,
  #2039), and with the budget capped at the grid size each such duplicate costs one point.
  How often depends on timing: the rate is measured, not asserted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from repro import targets
from repro.results import RunRecord, version_key

GRID = "optuna/samplers/_grid.py"


def source(tag: str, lines: str) -> str:
    return f"https://github.com/optuna/optuna/blob/{tag}/{GRID}#{lines}"


@dataclass(frozen=True)
class Expectation:
    since: str  # first release the row applies to (inclusive)
    until: str | None  # first release it no longer applies to (exclusive)
    modes: frozenset[str]
    seed_policies: frozenset[str]
    outcome: str  # exact | loses-points | racy
    # What the code at these releases means for these modes and seed policies. The upstream
    # change that starts a row (every ``since`` after 3.2.0) is told once, in
    # repro/timeline/changes.py as the change released at ``since``; ``why`` does not repeat it.
    why: str
    cite: tuple[str, ...]
    target: str = ""  # a target label (repro/targets.py): the row holds for that build only

    def covers(self, version: str, mode: str, seed_policy: str) -> bool:
        key = version_key(version)
        return (
            key >= version_key(self.since)
            and (self.until is None or key < version_key(self.until))
            and mode in self.modes
            and seed_policy in self.seed_policies
        )


ALL_POLICIES = frozenset({"none", "shared", "per-worker"})
PROCESS_MODES = frozenset({"sequential", "concurrent"})

_V320 = source("v3.2.0", "L113-L152")
_V361_SHUFFLE = source("v3.6.1", "L119-L120")
_V361_NUMBER = source("v3.6.1", "L136-L141")
_V500_SEED = source("v5.0.0", "L130-L131")
_V500_NUMBER = source("v5.0.0", "L147-L152")

TABLE: tuple[Expectation, ...] = (
    Expectation(
        "3.2.0",
        "3.4.0",
        frozenset({"sequential"}),
        ALL_POLICIES,
        "exact",
        "unshuffled grid shared by all workers; each worker picks among the ids the storage "
        "shows neither finished nor running, and sequential workers see every earlier trial",
        (_V320, source("v3.2.0", "L221-L247")),
    ),
    Expectation(
        "3.2.0",
        "3.4.0",
        frozenset({"concurrent", "threads"}),
        ALL_POLICIES,
        "racy",
        "unshuffled grid, so ids agree; the pick reads the storage and writes its grid_id "
        "later, so overlapping workers can pick the same id (#4627, #2039), more often with a "
        "shared seed: the workers then draw the same index from the same candidates",
        (_V320, source("v3.2.0", "L154-L155")),
    ),
    Expectation(
        "3.4.0",
        "4.0.0",
        PROCESS_MODES,
        frozenset({"none", "per-worker"}),
        "loses-points",
        "the workers' shuffles differ (seed None: OS entropy), so the same grid id means "
        "different points in different workers (reported as #5489)",
        (_V361_SHUFFLE, _V361_NUMBER),
    ),
    Expectation(
        "3.4.0",
        "4.0.0",
        PROCESS_MODES,
        frozenset({"shared"}),
        "exact",
        "the same seed gives every worker the same shuffle, and trial numbers are unique",
        (_V361_SHUFFLE, _V361_NUMBER),
    ),
    Expectation(
        "3.4.0",
        None,
        frozenset({"threads"}),
        ALL_POLICIES,
        "exact",
        "one sampler, one order; grid ids come from unique trial numbers",
        (_V361_NUMBER, _V500_NUMBER),
    ),
    Expectation(
        "4.0.0",
        None,
        PROCESS_MODES,
        frozenset({"none", "shared"}),
        "exact",
        "seed None and a shared seed both give every worker the same shuffle (the fix for #5489)",
        (_V500_SEED, _V500_NUMBER),
    ),
    Expectation(
        "4.0.0",
        None,
        PROCESS_MODES,
        frozenset({"per-worker"}),
        "loses-points",
        "different seeds still give different shuffles, so the same grid id still means "
        "different points in different workers",
        (_V500_SEED, _V500_NUMBER),
    ),
)


# Rows for builds that are not releases, looked up by the label of the target under test
# ($REPRO_TARGET); what they do not cover falls back to TABLE by the version the build reports.
TARGET_ROWS: tuple[Expectation, ...] = (
    Expectation(
        "5.0.0",
        "5.0.1",
        PROCESS_MODES,
        ALL_POLICIES,
        "exact",
        "patches/grid-shared-order.patch shuffles the grid with a seed derived from the search "
        "space (names and sizes) instead of each worker's seed, so every worker maps a trial "
        "number to the same point; trial numbers are unique",
        (_V500_SEED, _V500_NUMBER),
        target="5.0.0+grid-shared-order",
    ),
)


@dataclass(frozen=True)
class KnownFault:
    """A crash of Optuna itself (not of GridSampler's logic) that a run may hit on these
    releases. Such a run is recorded with its traceback and counted, but it neither passes nor
    fails an expectation: it measured nothing about the grid."""

    since: str
    until: str
    storage: str
    signature: tuple[str, ...]  # texts that the run's traceback must all contain
    name: str
    cite: str

    def matches(self, version: str, record: RunRecord) -> bool:
        key = version_key(version)
        return (
            record.error is not None
            and record.storage == self.storage
            and version_key(self.since) <= key < version_key(self.until)
            and all(text in record.error for text in self.signature)
        )


KNOWN_FAULTS: tuple[KnownFault, ...] = (
    KnownFault(
        "3.0.0",
        "3.6.0",
        "journal",
        ("in read_logs", "json.decoder.JSONDecodeError"),
        "optuna#5138: the journal file reader parses a line another process is still "
        "writing and raises JSONDecodeError (fixed in 3.6.0 by PR #5195)",
        "https://github.com/optuna/optuna/blob/v3.2.0/optuna/storages/_journal/file.py#L163-L188",
    ),
)


def known_fault(record: RunRecord, version: str) -> KnownFault | None:
    return next((f for f in KNOWN_FAULTS if f.matches(version, record)), None)


class NoExpectation(LookupError):
    pass


def expected(version: str, mode: str, seed_policy: str, target: str | None = None) -> Expectation:
    """The row for this run; ``target`` None means the target under test, if any."""
    label = targets.active().get("label", "") if target is None else target
    rows = [r for r in TARGET_ROWS if r.target == label and r.covers(version, mode, seed_policy)]
    rows = rows or [row for row in TABLE if row.covers(version, mode, seed_policy)]
    if len(rows) != 1:
        raise NoExpectation(
            f"{len(rows)} expectation rows cover Optuna {version}, {mode}, {seed_policy}; "
            "add or fix a row in repro/expectations.py"
        )
    return rows[0]


def violations(record: RunRecord, version: str, row: Expectation | None = None) -> list[str]:
    """What in one run contradicts its expectation; empty when it agrees."""
    row = row or expected(version, record.mode, record.seed_policy)
    where = (
        f"Optuna {version}, {record.scenario} r{record.repetition}: expected {row.outcome}, "
        f"measured trials={record.trials} complete={record.complete} missing={record.missing} "
        f"duplicates={record.duplicates} same_id={record.same_id_duplicates} "
        f"colliding={record.colliding_id_duplicates} orders={record.worker_orders_distinct}"
    )
    if record.error:
        if known_fault(record, version):
            return []
        return [f"{where}: run failed: {record.error.strip().splitlines()[-1]}"]
    problems: list[str] = []
    if record.complete != record.trials:
        problems.append("not every trial completed")
    if row.outcome == "exact":
        if record.missing or record.duplicates:
            problems.append("points lost or evaluated twice")
        if record.worker_orders_distinct != 1:
            problems.append("workers disagree on the grid order")
    elif row.outcome == "loses-points":
        if record.missing == 0:
            problems.append("no grid point lost (reproduction lost its power, or fixed?)")
        if record.same_id_duplicates:
            problems.append("a grid id was evaluated twice")
        expected_orders = 1 if record.mode == "threads" else record.workers
        if record.worker_orders_distinct != expected_orders:
            problems.append(f"expected {expected_orders} distinct worker orders")
    elif row.outcome == "racy":
        if record.colliding_id_duplicates:
            problems.append("duplicates from colliding grid ids")
        if record.worker_orders_distinct != 1:
            problems.append("workers disagree on the grid order")
        if record.missing != record.duplicates:
            problems.append("missing != duplicates although the budget equals the grid")
    return [f"{where}: {p}" for p in problems]


def all_violations(records: Iterable[RunRecord], version: str) -> list[str]:
    return [v for r in records for v in violations(r, version)]
