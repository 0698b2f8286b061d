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

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass

from repro import targets
from repro.results import RunRecord
from repro.scenarios import DEFAULT_SPACE, DEFAULT_WORKERS, Scenario
from repro.versions import version_key

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
def _patched_rows(release: str, until: str) -> tuple[Expectation, ...]:
    """The rows of the two patched builds of ``release`` (``RELEASE+grid-shared-order``, the
    proposed fix, and ``RELEASE+grid-study-order``, the alternative design); both patches leave
    the lines they cite as the release has them."""
    cite = (source(f"v{release}", "L130-L131"), source(f"v{release}", "L147-L152"))
    return (
        Expectation(
            release,
            until,
            PROCESS_MODES,
            ALL_POLICIES,
            "exact",
            "patches/grid-shared-order.patch shuffles the grid with a seed derived from the search "
            "space (names and sizes) instead of each worker's seed, so every worker maps a trial "
            "number to the same point; trial numbers are unique",
            cite,
            target=f"{release}+grid-shared-order",
        ),
        Expectation(
            release,
            until,
            PROCESS_MODES,
            ALL_POLICIES - {"per-worker"},
            "exact",
            "patches/grid-study-order.patch (the alternative design): the first process to sample "
            "stores its seed as a study system attr and every process shuffles with the stored "
            "seed; with one seed in every process, or none, whichever process writes it writes the "
            "same seed",
            cite,
            target=f"{release}+grid-study-order",
        ),
        Expectation(
            release,
            until,
            frozenset({"sequential"}),
            frozenset({"per-worker"}),
            "exact",
            "patches/grid-study-order.patch: a process that starts after another has sampled reads "
            "the stored seed, so processes one after another share one order",
            cite,
            target=f"{release}+grid-study-order",
        ),
        Expectation(
            release,
            until,
            frozenset({"concurrent"}),
            frozenset({"per-worker"}),
            "racy",
            "patches/grid-study-order.patch: processes that reach their first trial together can "
            "each read no attr and write their own seed (storages offer no compare-and-set for a "
            "study attr); the last write wins, and the trials assigned before it used another "
            "order",
            cite,
            target=f"{release}+grid-study-order",
        ),
    )


TARGET_ROWS: tuple[Expectation, ...] = _patched_rows("5.0.0", "5.0.1") + _patched_rows(
    "5.1.0", "5.1.1"
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
        return record.error is not None and self.explains(version, record.storage, record.error)

    def explains(self, version: str, storage: str, traceback: str) -> bool:
        key = version_key(version)
        return (
            storage == self.storage
            and version_key(self.since) <= key < version_key(self.until)
            and all(text in traceback for text in self.signature)
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


# Outcomes the code forces: one run decides them (for "loses-points" up to the chance that
# disagreeing shuffles still cover the grid, 7.0e-9 per run on the default grid).
FORCED = frozenset({"exact", "loses-points"})


def runs_needed(version: str, scenario: Scenario, timed: int, forced: int) -> int:
    """How many runs a scenario gets: ``forced`` where the table says the code forces the
    outcome and the shape is the default one the bound is stated for; ``timed`` where the
    outcome depends on timing (``racy``), where no row covers it, or for another shape."""
    default_shape = (
        scenario.search_space == DEFAULT_SPACE
        and scenario.workers == DEFAULT_WORKERS
        and scenario.trials_per_worker is None
    )
    try:
        if scenario.remedy == "grid":
            outcome = expected(version, scenario.mode, scenario.seed_policy).outcome
        else:
            # A remedy's own row; only "exact" is forced there (its other outcomes carry no
            # per-run bound).
            row = remedy_expected(
                version, scenario.remedy, scenario.mode, scenario.seed_policy, scenario.storage
            )
            outcome = row.outcome if row.outcome == "exact" else "racy"
    except NoExpectation:
        return timed
    return forced if default_shape and outcome in FORCED else timed


def violations(record: RunRecord, version: str, row: Expectation | None = None) -> list[str]:
    """What in one run contradicts its expectation; empty when it agrees. A remedy run
    is judged by its own row in REMEDY_TABLE."""
    if row is None and record.remedy != "grid":
        return remedy_violations(record, version)
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


# Rolling upgrades: workers of two releases share one study (repro/rolling). What they do
# together follows from what each release's GridSampler means by a grid id, so releases are
# grouped into families with one meaning each, and the rows below are per family pair.
UNSHUFFLED = "unshuffled"  # grid in itertools.product order; id picked among unvisited ids
SHUFFLED_ENTROPY = "shuffled-entropy"  # grid shuffled by the seed (None: OS entropy); id = number
SHUFFLED_SEED0 = "shuffled-seed0"  # as above, but seed None means seed 0

_V400_SEED = source("v4.0.0", "L123-L124")
_V400_NUMBER = source("v4.0.0", "L140-L145")
_V320_ORDER = source("v3.2.0", "L113-L116")
_V320_PICK = source("v3.2.0", "L134-L155")


@dataclass(frozen=True)
class GridFamily:
    since: str
    until: str | None
    name: str
    cite: tuple[str, ...]


GRID_FAMILIES: tuple[GridFamily, ...] = (
    # 3.1.x has the same GridSampler as 3.2.0 (the diff between the tags moves a return only).
    GridFamily("3.1.0", "3.4.0", UNSHUFFLED, (_V320_ORDER, _V320_PICK)),
    GridFamily("3.4.0", "4.0.0", SHUFFLED_ENTROPY, (_V361_SHUFFLE, _V361_NUMBER)),
    GridFamily("4.0.0", None, SHUFFLED_SEED0, (_V400_SEED, _V400_NUMBER, _V500_SEED)),
)


def _in_range(version: str, since: str, until: str | None) -> bool:
    key = version_key(version)
    return key >= version_key(since) and (until is None or key < version_key(until))


def grid_family(version: str) -> GridFamily:
    for family in GRID_FAMILIES:
        if _in_range(version, family.since, family.until):
            return family
    raise NoExpectation(f"no GridSampler family covers Optuna {version}; add a GRID_FAMILIES row")


# Rolling outcomes, besides exact / racy / loses-points above:
# - ``disagree``: the two releases map grid ids to different points (or one picks ids the other
#   hands out by trial number), so a run is exact only when the picks happen to avoid each other;
#   how often is measured, not asserted.
DISAGREE = "disagree"
# A seed-None worker of 3.4-3.x draws its order from OS entropy, so its 6 points are a uniform
# 6-subset of the 24-point grid, independent of the other 18 trials: the run is exact only if
# they are exactly the 6 points nobody else evaluated, probability 1 / C(24, 6) = 7.4e-6.
ENTROPY_BOUND = "1/C(24,6) = 7.4e-6 per run"


@dataclass(frozen=True)
class RollingExpectation:
    families: frozenset[str]  # the two families (one element when both are the same)
    modes: frozenset[str]
    seed_policies: frozenset[str]
    outcome: str  # exact | racy | loses-points | disagree
    why: str
    cite: tuple[str, ...]


ROLLING_POLICIES = frozenset({"none", "shared"})

ROLLING_TABLE: tuple[RollingExpectation, ...] = (
    RollingExpectation(
        frozenset({UNSHUFFLED}),
        frozenset({"sequential"}),
        ROLLING_POLICIES,
        "exact",
        "both releases keep the grid unshuffled and pick among ids the storage shows unvisited",
        (_V320_ORDER, _V320_PICK),
    ),
    RollingExpectation(
        frozenset({UNSHUFFLED}),
        frozenset({"concurrent"}),
        ROLLING_POLICIES,
        "racy",
        "ids agree, but overlapping workers can pick the same unvisited id (#4627, #2039)",
        (_V320_PICK,),
    ),
    RollingExpectation(
        frozenset({UNSHUFFLED, SHUFFLED_ENTROPY}),
        PROCESS_MODES,
        frozenset({"none"}),
        "loses-points",
        "the 3.4-3.x workers shuffle the grid with OS entropy and take grid_id = trial.number "
        f"without looking at the storage; exact only by chance ({ENTROPY_BOUND})",
        (_V320_ORDER, _V361_SHUFFLE, _V361_NUMBER),
    ),
    RollingExpectation(
        frozenset({UNSHUFFLED, SHUFFLED_ENTROPY}),
        PROCESS_MODES,
        frozenset({"shared"}),
        DISAGREE,
        "the older release keeps the grid in product order, the newer shuffles it by the seed, "
        "and ids come from a random unvisited pick on one side and the trial number on the other",
        (_V320_ORDER, _V320_PICK, _V361_SHUFFLE, _V361_NUMBER),
    ),
    RollingExpectation(
        frozenset({UNSHUFFLED, SHUFFLED_SEED0}),
        PROCESS_MODES,
        ROLLING_POLICIES,
        DISAGREE,
        "product order against a fixed shuffle (seed or 0), random unvisited picks against ids "
        "from trial numbers",
        (_V320_ORDER, _V320_PICK, _V400_SEED, _V400_NUMBER),
    ),
    RollingExpectation(
        frozenset({SHUFFLED_ENTROPY}),
        PROCESS_MODES,
        frozenset({"none"}),
        "loses-points",
        f"every worker shuffles with its own OS entropy (#5489; exact only by chance, "
        f"{ENTROPY_BOUND})",
        (_V361_SHUFFLE, _V361_NUMBER),
    ),
    RollingExpectation(
        frozenset({SHUFFLED_ENTROPY, SHUFFLED_SEED0}),
        PROCESS_MODES,
        frozenset({"none"}),
        "loses-points",
        "the 4.x+ workers shuffle with seed 0, the 3.4-3.x workers with OS entropy, and both take "
        f"grid_id = trial.number (exact only by chance, {ENTROPY_BOUND})",
        (_V361_SHUFFLE, _V361_NUMBER, _V400_SEED, _V400_NUMBER),
    ),
    RollingExpectation(
        frozenset({SHUFFLED_ENTROPY, SHUFFLED_SEED0}),
        PROCESS_MODES,
        frozenset({"shared"}),
        "exact",
        "the same product order shuffled by the same np.random.RandomState(seed) on both sides, "
        "and grid ids from unique trial numbers",
        (_V361_SHUFFLE, _V361_NUMBER, _V400_SEED, _V400_NUMBER),
    ),
    RollingExpectation(
        frozenset({SHUFFLED_ENTROPY}),
        PROCESS_MODES,
        frozenset({"shared"}),
        "exact",
        "the same seed gives every worker the same shuffle; ids from unique trial numbers",
        (_V361_SHUFFLE, _V361_NUMBER),
    ),
    RollingExpectation(
        frozenset({SHUFFLED_SEED0}),
        PROCESS_MODES,
        ROLLING_POLICIES,
        "exact",
        "seed None means seed 0 on both sides, so both shuffle alike; ids from trial numbers",
        (_V400_SEED, _V400_NUMBER, _V500_SEED, _V500_NUMBER),
    ),
)


def rolling_expected(a: str, b: str, mode: str, seed_policy: str) -> RollingExpectation:
    """The row for workers of releases ``a`` and ``b`` sharing one study."""
    families = frozenset({grid_family(a).name, grid_family(b).name})
    rows = [
        row
        for row in ROLLING_TABLE
        if row.families == families and mode in row.modes and seed_policy in row.seed_policies
    ]
    if len(rows) != 1:
        raise NoExpectation(
            f"{len(rows)} rolling rows cover Optuna {a} + {b}, {mode}, {seed_policy}; "
            "add or fix a row in repro/expectations.py"
        )
    return rows[0]


RDB_STORAGE = "optuna/storages/_rdb/storage.py"


@dataclass(frozen=True)
class SchemaHead:
    """The newest alembic revision a release knows. RDBStorage refuses to open a database whose
    revision differs from its own head: an older schema with "optuna storage upgrade", a newer
    (unknown) one with "pip install -U optuna"."""

    since: str
    until: str | None
    revision: str
    cite: tuple[str, ...]


_RDB_CHECK = (
    f"https://github.com/optuna/optuna/blob/v3.2.0/{RDB_STORAGE}#L1070-L1099",
    f"https://github.com/optuna/optuna/blob/v5.0.0/{RDB_STORAGE}#L1147-L1177",
)
_ALEMBIC = "optuna/storages/_rdb/alembic/versions"

SCHEMA_HEADS: tuple[SchemaHead, ...] = (
    SchemaHead(
        "3.0.0",
        "3.2.0",
        "v3.0.0.d",
        (f"https://github.com/optuna/optuna/blob/v3.1.1/{_ALEMBIC}/v3.0.0.d.py#L26-L27",),
    ),
    SchemaHead(
        "3.2.0",
        None,
        "v3.2.0.a",
        (
            f"https://github.com/optuna/optuna/blob/v3.2.0/{_ALEMBIC}/v3.2.0.a_.py#L12-L13",
            # v5.0.0 still has no newer revision file.
            f"https://github.com/optuna/optuna/tree/v5.0.0/{_ALEMBIC}",
        ),
    ),
)

# The journal file format: the same operation codes 0-9 and the same symlink lock on
# "<file>.lock" from 3.1 to 5.0, so releases read each other's journal.
JOURNAL_FORMAT_CITE = (
    "https://github.com/optuna/optuna/blob/v3.2.0/optuna/storages/_journal/storage.py#L39-L49",
    "https://github.com/optuna/optuna/blob/v5.0.0/optuna/storages/journal/_storage.py#L41-L51",
    "https://github.com/optuna/optuna/blob/v3.2.0/optuna/storages/_journal/file.py#L159",
    "https://github.com/optuna/optuna/blob/v5.0.0/optuna/storages/journal/_file.py#L61",
)


def schema_head(version: str) -> SchemaHead:
    for head in SCHEMA_HEADS:
        if _in_range(version, head.since, head.until):
            return head
    raise NoExpectation(f"no alembic head known for Optuna {version}; add a SCHEMA_HEADS row")


@dataclass(frozen=True)
class StorageExpectation:
    outcome: str  # ok | refused
    why: str
    cite: tuple[str, ...]


def storage_expected(a: str, b: str, storage: str) -> StorageExpectation:
    """Whether releases ``a`` and ``b`` can share one storage of this kind."""
    if storage in ("journal", "redis"):
        return StorageExpectation(
            "ok", "same journal operation codes and file lock", JOURNAL_FORMAT_CITE
        )
    head_a, head_b = schema_head(a), schema_head(b)
    cite = tuple(dict.fromkeys(head_a.cite + head_b.cite + _RDB_CHECK))
    if head_a.revision == head_b.revision:
        return StorageExpectation("ok", f"both releases expect schema {head_a.revision}", cite)
    return StorageExpectation(
        "refused",
        f"schema {head_a.revision} against {head_b.revision}: the release that did not create "
        "the tables refuses them when it opens the storage",
        cite,
    )


# Remedies: what a user is told to change, and what the code then forces. Rows
# key on (remedy, mode, seed policy, storage); the GridSampler rows above stay the "grid"
# remedy. Outcomes as above, plus ``covers``: every grid point evaluated at least once, at the
# cost of extra evaluations (the bigger budgets); the extras are measured.


def upstream(tag: str, path: str, lines: str) -> str:
    return f"https://github.com/optuna/optuna/blob/{tag}/{path}#{lines}"


BRUTE = "optuna/samplers/_brute_force.py"
STUDY = "optuna/study/study.py"
RDB = "optuna/storages/_rdb/storage.py"
RDB_MODELS = "optuna/storages/_rdb/models.py"
JOURNAL_3X = "optuna/storages/_journal/storage.py"
JOURNAL_5X = "optuna/storages/journal/_storage.py"

_BRUTE_SAMPLE = (
    upstream("v3.2.0", BRUTE, "L177-L229"),
    upstream("v3.6.1", BRUTE, "L178-L242"),
    upstream("v5.0.0", BRUTE, "L332-L390"),
)
# BruteForceSampler(avoid_premature_stop=True): the argument (4.3.0: __init__ and both uses),
# and at 5.0.0 the tree's count of unexpanded leaves, the pick and the stop.
_BRUTE_STRICT = (
    upstream("v4.3.0", BRUTE, "L145-L155"),
    upstream("v4.3.0", BRUTE, "L193-L263"),
    upstream("v5.0.0", BRUTE, "L172-L190"),
    upstream("v5.0.0", BRUTE, "L332-L390"),
)
_POP = (
    upstream("v3.2.0", STUDY, "L1027-L1037"),
    upstream("v3.6.1", STUDY, "L1036-L1046"),
    upstream("v5.0.0", STUDY, "L1071-L1092"),
)
_RDB_CLAIM = (
    upstream("v3.2.0", RDB, "L634-L658"),
    upstream("v3.2.0", RDB_MODELS, "L235-L250"),
    upstream("v3.6.1", RDB, "L636-L660"),
    upstream("v5.0.0", RDB, "L670-L694"),
)
_JOURNAL_CLAIM = (
    upstream("v3.2.0", JOURNAL_3X, "L311-L332"),
    upstream("v3.2.0", JOURNAL_3X, "L595-L616"),
    upstream("v3.6.1", JOURNAL_3X, "L594-L615"),
    upstream("v5.0.0", JOURNAL_5X, "L308-L354"),
)
_SQLITE_FAQ = upstream("v3.6.1", "docs/source/faq.rst", "L539-L545")
_GRID_EXHAUSTED = (
    upstream("v3.2.0", GRID, "L134-L155"),
    upstream("v3.2.0", GRID, "L193-L207"),
    upstream("v3.6.1", GRID, "L136-L160"),
    upstream("v3.6.1", GRID, "L205-L219"),
    upstream("v5.0.0", GRID, "L147-L171"),
    upstream("v5.0.0", GRID, "L213-L227"),
)

ANY_STORAGE = frozenset({"sqlite", "journal", "postgresql", "mysql", "redis"})
ROW_LOCKING = frozenset({"postgresql", "mysql"})
JOURNALED = frozenset({"journal", "redis"})
SEQUENTIAL = frozenset({"sequential"})
CONCURRENT = frozenset({"concurrent"})
BUDGETS = frozenset({"x1.5", "x2"})


@dataclass(frozen=True)
class RemedyExpectation:
    since: str
    until: str | None
    remedies: frozenset[str]
    modes: frozenset[str]
    storages: frozenset[str]
    outcome: str  # exact | racy | loses-points | covers
    why: str
    cite: tuple[str, ...]
    seed_policies: frozenset[str] = ALL_POLICIES

    def covers(self, version: str, remedy: str, mode: str, seed_policy: str, storage: str) -> bool:
        key = version_key(version)
        return (
            key >= version_key(self.since)
            and (self.until is None or key < version_key(self.until))
            and remedy in self.remedies
            and mode in self.modes
            and seed_policy in self.seed_policies
            and storage in self.storages
        )


REMEDY_TABLE: tuple[RemedyExpectation, ...] = (
    RemedyExpectation(
        "3.1.0",
        None,
        frozenset({"bruteforce"}),
        SEQUENTIAL,
        ANY_STORAGE,
        "exact",
        "each trial reads every finished and running trial from the storage and picks a leaf "
        "no trial has taken; a worker that runs alone sees all earlier trials, and the sampler "
        "stops the study once no leaf is left. For choices Optuna tells apart: values that "
        "compare equal (0 and False, 1 and True) get one index, so one of their leaves is never "
        "marked taken and is picked again (corpus case-119 lost a point on every release; "
        "the corpus does not judge such spaces by this row)",
        (
            *_BRUTE_SAMPLE,
            upstream("v5.0.0", BRUTE, "L303-L310"),
            upstream("v5.0.0", "optuna/distributions.py", "L509-L515"),
        ),
    ),
    RemedyExpectation(
        "3.1.0",
        "3.4.0",
        frozenset({"bruteforce"}),
        CONCURRENT,
        ANY_STORAGE,
        "racy",
        "workers crash: another worker's RUNNING trial that has not suggested yet has no "
        "params, so building the tree marks the root itself a leaf, and expanding it for the "
        "first parameter raises 'ValueError: param_name mismatch: None != x' (fixed in 3.4.0 "
        "by PR #5022, which expands the root first); when no such trial is read, picks still "
        "race as in the row below. How often depends on timing",
        (
            upstream("v3.2.0", BRUTE, "L37-L53"),
            upstream("v3.2.0", BRUTE, "L146-L197"),
            upstream("v3.6.1", BRUTE, "L194-L200"),
        ),
    ),
    RemedyExpectation(
        "3.4.0",
        None,
        frozenset({"bruteforce"}),
        CONCURRENT,
        ANY_STORAGE,
        "racy",
        "the pick reads the storage and writes the chosen value only with the suggest, so two "
        "workers that read before either writes can take the same leaf (5.0.0 prefers leaves no "
        "running trial holds, which narrows but does not close the window); with the budget at "
        "the grid size each duplicate costs a point; the docstring warns that a seed makes "
        "duplicates likelier in distributed runs",
        _BRUTE_SAMPLE,
    ),
    RemedyExpectation(
        "4.3.0",
        None,
        frozenset({"bruteforce-strict"}),
        SEQUENTIAL,
        ANY_STORAGE,
        "exact",
        "avoid_premature_stop=True only changes how running trials count (exclude_running is "
        "False in sample_independent and after_trial): a worker that runs alone sees no "
        "running trial but its own, so it picks and stops as the plain BruteForceSampler does "
        "(same note on values that compare equal as the plain row)",
        _BRUTE_STRICT,
    ),
    RemedyExpectation(
        "4.3.0",
        None,
        frozenset({"bruteforce-strict"}),
        CONCURRENT,
        ANY_STORAGE,
        "racy",
        "the pick still reads the storage and writes the chosen value only with the suggest, "
        "and with exclude_running False a leaf another worker is running counts as unexpanded "
        "(count_unexpanded), so it can be picked again; the study stops only when no leaf is "
        "left, running ones included. With the budget at the grid size each duplicate costs a "
        "point; the docstring warns that the option may increase duplicate sampling",
        _BRUTE_STRICT,
    ),
    RemedyExpectation(
        "3.2.0",
        None,
        frozenset({"enqueued"}),
        SEQUENTIAL,
        ANY_STORAGE,
        "exact",
        "every grid point is a WAITING trial before any worker starts; a worker that runs alone "
        "claims them one by one (Study._pop_waiting_trial_id), and the fixed params override "
        "the sampler",
        _POP,
    ),
    RemedyExpectation(
        "3.2.0",
        None,
        frozenset({"enqueued"}),
        CONCURRENT,
        ROW_LOCKING,
        "exact",
        "the claim is one transaction: SELECT ... FOR UPDATE locks the trial row, and a trial "
        "that is no longer WAITING returns False, so the next worker moves on to the next one. "
        "(3.x also raises when a listed trial finished in between, caught only from 4.3.0 "
        "on; the harness's barrier keeps every claimed trial running until all workers hold "
        "one, so that window stays shut here)",
        _POP + _RDB_CLAIM,
    ),
    RemedyExpectation(
        "3.2.0",
        None,
        frozenset({"enqueued"}),
        CONCURRENT,
        JOURNALED,
        "exact",
        "the claim is a log entry; every process replays the one log in the same order, the "
        "first RUNNING entry for a WAITING trial wins and later ones are no-ops, and only the "
        "process whose entry won owns the trial (same note on finished trials as the RDB row)",
        _POP + _JOURNAL_CLAIM,
    ),
    RemedyExpectation(
        "3.2.0",
        None,
        frozenset({"enqueued"}),
        CONCURRENT,
        frozenset({"sqlite"}),
        "racy",
        "SQLite has no SELECT ... FOR UPDATE (the FAQ says so), and the state check reads the "
        "row before the UPDATE starts the write transaction, so two workers can both claim one "
        "trial; the second to finish it crashes with 'has already finished and can not be "
        "updated', and its unclaimed share stays WAITING. How often depends on timing",
        (_SQLITE_FAQ, *_POP, *_RDB_CLAIM),
    ),
    RemedyExpectation(
        "3.2.0",
        "3.4.0",
        BUDGETS,
        SEQUENTIAL,
        ANY_STORAGE,
        "covers",
        "the unshuffled grid is covered by trial 23, whose worker then stops the study; each "
        "later worker finds no unvisited id, re-evaluates a random point and stops: one extra "
        "evaluation per later worker",
        _GRID_EXHAUSTED,
    ),
    RemedyExpectation(
        "3.2.0",
        "3.4.0",
        BUDGETS,
        CONCURRENT,
        ANY_STORAGE,
        "racy",
        "as with the capped budget, overlapping picks can take the same id; the extra trials "
        "pick among ids not yet finished, so whether they fill the gaps depends on timing",
        _GRID_EXHAUSTED,
    ),
    RemedyExpectation(
        "3.4.0",
        "4.0.0",
        BUDGETS,
        PROCESS_MODES,
        ANY_STORAGE,
        "loses-points",
        "more trials do not help: grid ids 0..23 come from trial numbers in each worker's own "
        "shuffle, so once trial 23 is done every id is marked visited and the sampler stops the "
        "study; each later worker evaluates one random point and stops. The points lost in the "
        "first 24 trials stay lost unless those random extras happen to hit them (measured)",
        _GRID_EXHAUSTED,
        frozenset({"none", "per-worker"}),
    ),
    RemedyExpectation(
        "4.0.0",
        None,
        BUDGETS,
        PROCESS_MODES,
        ANY_STORAGE,
        "covers",
        "seed None is seed 0 in every worker, so trials 0..23 cover the grid; the trials beyond "
        "the grid find no unvisited id and re-evaluate a point before the sampler stops the "
        "study: the extra budget buys only duplicates (how many is measured)",
        _GRID_EXHAUSTED,
        frozenset({"none", "shared"}),
    ),
)


def remedy_expected(
    version: str, remedy: str, mode: str, seed_policy: str, storage: str
) -> RemedyExpectation:
    rows = [r for r in REMEDY_TABLE if r.covers(version, remedy, mode, seed_policy, storage)]
    if len(rows) != 1:
        raise NoExpectation(
            f"{len(rows)} remedy rows cover Optuna {version}, {remedy}, {mode}, {seed_policy}, "
            f"{storage}; add or fix a row in repro/expectations.py"
        )
    return rows[0]


def remedy_violations(record: RunRecord, version: str) -> list[str]:
    """What in one remedy run contradicts its row; empty when it agrees. Only forced outcomes
    are checked: ``racy`` rows (and the random extras of ``loses-points`` budgets) are rates."""
    row = remedy_expected(version, record.remedy, record.mode, record.seed_policy, record.storage)
    where = (
        f"Optuna {version}, {record.scenario} r{record.repetition}: expected {row.outcome}, "
        f"measured trials={record.trials} missing={record.missing} "
        f"duplicates={record.duplicates} crashes={len(record.worker_crashes)}"
    )
    if record.error:
        return [f"{where}: run failed: {record.error.strip().splitlines()[-1]}"]
    if any(
        fault.explains(version, record.storage, crash)
        for crash in record.worker_crashes
        for fault in KNOWN_FAULTS
    ):
        return []  # a crash of Optuna itself measured nothing about the remedy (see KnownFault)
    problems: list[str] = []
    if row.outcome in ("exact", "covers"):
        if record.worker_crashes:
            problems.append("a worker crashed")
        if record.missing:
            problems.append("grid points never evaluated")
        if record.complete != record.trials:
            problems.append("not every trial completed")
    if row.outcome == "exact" and record.duplicates:
        problems.append("grid points evaluated twice")
    if record.remedy in BUDGETS and record.mode == "sequential":
        # GridSampler stops the study once every grid id is visited, whatever the budget, and
        # each worker that starts later evaluates one point before it stops too.
        later = record.workers - math.ceil(record.grid_size / record.trials_per_worker)
        if record.trials != record.grid_size + later:
            problems.append(f"expected {record.grid_size + later} trials")
    return [f"{where}: {p}" for p in problems]


# Optuna's gRPC storage proxy (repro/scale). Does the client's trial cache let a sampler read a
# stale list of trials? From the code, no, on every release that has the proxy:
# - every ``get_all_trials`` of the client asks the server, under the cache's lock, for each
#   trial it holds as unfinished and each trial with an id above the highest finished id it
#   has seen (client.py, GrpcClientCache); finished trials never change, so only a trial that
#   became visible after one with a higher id had already finished could be missed;
# - the server answers from its backend's own read (servicer GetTrials; the backend is the
#   ``get_storage`` wrapper, whose cache reads the database by the same rule);
# - on an RDB backend, trial creation takes the study row FOR UPDATE before the insert
#   (storage.py ``_create_new_trial``) and SQLite serializes writers, so trial ids become
#   visible in id order and no trial can appear below one already seen finished.
# So a GridSampler run (and the enqueued grid) through the proxy is judged by the row of the
# database itself. Not so BruteForceSampler: a trial crosses the proxy with its params and
# distributions as protobuf maps (api.proto), which keep no order: protobuf's Python runtime
# (upb) seeds its map hash per process, so a trial read back can list its distributions in
# another order than they were suggested in, in some processes and not in others.
# BruteForceSampler builds its tree in the order of each trial's distributions and raises on
# two trials that disagree.
GRPC_CLIENT = "optuna/storages/_grpc/client.py"
CACHED_STORAGE = "optuna/storages/_cached_storage.py"
_GRPC_CACHE = (
    upstream("v4.2.0", GRPC_CLIENT, "L343-L411"),
    upstream("v4.2.0", "optuna/storages/_grpc/server.py", "L325-L342"),
    upstream("v4.2.0", CACHED_STORAGE, "L148-L162"),
    upstream("v4.2.0", CACHED_STORAGE, "L237-L259"),
    upstream("v4.2.0", RDB, "L472-L481"),
)
_GRPC_MAPS = (
    upstream("v4.2.0", "optuna/storages/_grpc/api.proto", "L436-L437"),
    upstream("v4.2.0", "optuna/storages/_grpc/server.py", "L410-L416"),
    upstream("v4.2.0", BRUTE, "L149-L166"),
    upstream("v4.2.0", BRUTE, "L40-L49"),
)
GRPC_SINCE = "4.2.0"
PROXY_STORAGES = frozenset({"grpc-sqlite", "grpc-postgresql"})


@dataclass(frozen=True)
class ProxyExpectation:
    since: str
    remedies: frozenset[str]
    # as-direct: the row of the database itself (TABLE, or REMEDY_TABLE for a remedy);
    # may-crash: a worker crashes with ``signature`` in some runs (how often is measured); a
    # run where none does is judged as-direct.
    outcome: str
    why: str
    cite: tuple[str, ...]
    signature: str = ""


PROXY_TABLE: tuple[ProxyExpectation, ...] = (
    ProxyExpectation(
        GRPC_SINCE,
        frozenset({"grid", "enqueued", "x1.5", "x2"}),
        "as-direct",
        "the client re-reads every unfinished trial and every trial above the last finished id "
        "on each read, the server reads its database by the same rule, and trial ids become "
        "visible in id order (the study row is locked FOR UPDATE; SQLite serializes writers): "
        "the cache hides no trial from a sampler",
        _GRPC_CACHE,
    ),
    ProxyExpectation(
        GRPC_SINCE,
        frozenset({"bruteforce", "bruteforce-strict"}),
        "may-crash",
        "params and distributions cross the proxy as protobuf maps, whose order depends on the "
        "process (upb seeds its hash per process); BruteForceSampler builds its tree in each "
        "trial's order of distributions and raises when two trials disagree, so a worker "
        "crashes in the runs where the orders differ",
        _GRPC_MAPS,
        signature="param_name mismatch",
    ),
)


def proxy_expected(version: str, storage: str, remedy: str = "grid") -> ProxyExpectation | None:
    """The proxy row for a run on ``storage``; None on a release before the proxy or for a
    storage that is no proxy."""
    for row in PROXY_TABLE:
        if (
            storage in PROXY_STORAGES
            and remedy in row.remedies
            and version_key(version) >= version_key(row.since)
        ):
            return row
    return None


def proxy_violations(record: RunRecord, version: str) -> list[str]:
    """What in a run through the proxy contradicts its proxy row; empty when it agrees."""
    row = proxy_expected(version, record.storage, record.remedy)
    where = f"Optuna {version}, {record.scenario} r{record.repetition}"
    if row is None:
        return [f"{where}: no proxy row for {record.storage} and {record.remedy}"]
    if row.outcome == "may-crash" and record.worker_crashes:
        others = [c for c in record.worker_crashes if row.signature not in c]
        return [
            f"{where}: a worker crashed otherwise: {c.strip().splitlines()[-1]}" for c in others
        ]
    backend = record.storage.removeprefix("grpc-")
    return violations(dataclasses.replace(record, storage=backend), version)


# Dask (repro/scale/pattern.py): Optuna's Dask example pickles one study, and with it one
# sampler, into every task. Does that sampler's shared random state make the workers collide?
# - ``reseed_rng`` runs only in the threads of ``n_jobs != 1``: with ``n_jobs=1``, as every
#   task calls ``study.optimize``, ``_optimize_sequential`` gets ``reseed_sampler_rng=False``
#   (_optimize.py), so every task starts from the random state the client pickled.
# - So every task draws as a worker with the shared seed does, whatever the seed: the 3.2.0
#   pick, ``self._rng.choice`` among the ids the storage shows unvisited, gives the same id in
#   every task that reads the same ids (racy, as with a shared seed); from 3.4.0 the shuffle was
#   made once, on the client, so every task has the same order, and trial ``n`` takes grid id
#   ``n`` for the first len(grid) trials without any draw. Past them every id has been handed
#   out, and the same draw in every task can only re-evaluate a point, never lose one.
# - DaskStorage serializes every storage call in the scheduler's event loop (one handler per
#   method), in front of an InMemoryStorage or Optuna's cached RDB storage, so trial numbers
#   stay unique and the pickled pattern's row holds on it too.
OPTIMIZE = "optuna/study/_optimize.py"
DASK_INTEGRATION = "optuna/integration/dask.py"
_RESEED = (
    upstream("v3.2.0", OPTIMIZE, "L65-L77"),
    upstream("v3.2.0", OPTIMIZE, "L105-L119"),
    upstream("v3.2.0", OPTIMIZE, "L140-L141"),
    upstream("v3.6.1", OPTIMIZE, "L61-L73"),
    upstream("v3.6.1", OPTIMIZE, "L136-L137"),
    upstream("v5.1.0", OPTIMIZE, "L67-L79"),
    upstream("v5.1.0", OPTIMIZE, "L146-L147"),
)
_PICKLED_DRAWS = (
    upstream("v3.2.0", GRID, "L116-L119"),
    upstream("v3.2.0", GRID, "L134-L152"),
    upstream("v3.6.1", GRID, "L119-L123"),
    upstream("v3.6.1", GRID, "L136-L161"),
    upstream("v5.1.0", GRID, "L130-L134"),
    upstream("v5.1.0", GRID, "L147-L172"),
)
_DASK_STORAGE = (
    upstream("v3.2.0", DASK_INTEGRATION, "L108-L137"),
    upstream("v3.2.0", DASK_INTEGRATION, "L404-L413"),
    upstream("v3.6.1", DASK_INTEGRATION, "L1"),
)
DASK_STORAGES = frozenset({"dask-memory", "dask-sqlite", "dask-postgresql"})
PICKLED_STORAGES = frozenset(
    {"pickled-sqlite", "pickled-postgresql", "pickled-grpc-sqlite", "pickled-grpc-postgresql"}
)


@dataclass(frozen=True)
class DaskExpectation:
    since: str
    storages: frozenset[str]
    # as-shared: the row of a worker with the shared seed (TABLE, or REMEDY_TABLE for a
    # remedy) on the storage underneath, whatever the run's seed policy.
    outcome: str
    why: str
    cite: tuple[str, ...]


DASK_TABLE: tuple[DaskExpectation, ...] = (
    DaskExpectation(
        "3.2.0",
        PICKLED_STORAGES,
        "as-shared",
        "reseed_rng runs only for n_jobs != 1, so every task keeps the random state pickled on "
        "the client: each draws as a worker with the shared seed (3.2.0: the same pick among the "
        "same unvisited ids, racy; from 3.4.0: one order for all, grid id = trial number for the "
        "first len(grid) trials, and past them every id is handed out: a same draw re-evaluates, "
        "it loses no point)",
        _RESEED + _PICKLED_DRAWS,
    ),
    DaskExpectation(
        "3.2.0",
        DASK_STORAGES,
        "as-shared",
        "the pickled pattern's row, on a storage whose every call runs in the scheduler's event "
        "loop, one at a time (an InMemoryStorage, or Optuna's cached RDB storage for a URL)",
        _RESEED + _PICKLED_DRAWS + _DASK_STORAGE,
    ),
)


def dask_expected(version: str, storage: str) -> DaskExpectation:
    for row in DASK_TABLE:
        if storage in row.storages and version_key(version) >= version_key(row.since):
            return row
    raise NoExpectation(f"no DASK_TABLE row covers Optuna {version} on {storage}")


def dask_violations(record: RunRecord, version: str) -> list[str]:
    """What in a run of Optuna's Dask example pattern contradicts its row: the run is judged
    as a run with the shared seed on the storage underneath."""
    dask_expected(version, record.storage)
    underneath = record.storage.removeprefix("pickled-").removeprefix("grpc-")
    underneath = underneath.removeprefix("dask-")
    if underneath == "memory" and record.remedy != "grid":
        # The remedy rows are per storage kind; none is for an InMemoryStorage.
        return [f"Optuna {version}, {record.scenario}: no row for {record.remedy} in memory"]
    return violations(
        dataclasses.replace(record, storage=underneath, seed_policy="shared"), version
    )
