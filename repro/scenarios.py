"""Scenarios are data: what to run, never how. Tests parametrize over them and the report
groups by them, so there is exactly one definition of each."""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from repro.errors import ReproError

GridValue = str | float | int | bool | None
SearchSpace = tuple[tuple[str, tuple[GridValue, ...]], ...]

Mode = Literal["sequential", "concurrent", "threads"]
SeedPolicy = Literal["none", "shared", "per-worker"]
# What a user changes to get every grid point once: "grid" is today's GridSampler;
# "bruteforce" swaps in BruteForceSampler; "enqueued" enqueues the whole grid before the
# workers start and lets them pop it with RandomSampler; "x1.5" and "x2" keep GridSampler but
# give the study 1.5x or 2x the grid size as its budget ("just run a few more trials");
# "bruteforce-strict" is BruteForceSampler(avoid_premature_stop=True), from Optuna 4.3.0 on
# (``REMEDY_SINCE``; not applicable on earlier releases).
Remedy = Literal["grid", "bruteforce", "bruteforce-strict", "enqueued", "x1.5", "x2"]

MODES: tuple[Mode, ...] = ("sequential", "concurrent", "threads")
SEED_POLICIES: tuple[SeedPolicy, ...] = ("none", "shared", "per-worker")
REMEDIES: tuple[Remedy, ...] = ("grid", "bruteforce", "bruteforce-strict", "enqueued", "x1.5", "x2")
BRUTE_FORCE: tuple[Remedy, ...] = ("bruteforce", "bruteforce-strict")
# The first release that has what a remedy needs, where that is not every pinned release:
# `avoid_premature_stop` is absent from BruteForceSampler.__init__ at v4.2.1 and present at
# v4.3.0 (https://github.com/optuna/optuna/blob/v4.3.0/optuna/samplers/_brute_force.py#L153-L155,
# optuna#5893). `_compat.remedy_available` asks the installed Optuna itself.
REMEDY_SINCE: dict[Remedy, str] = {"bruteforce-strict": "4.3.0"}
BUDGET_FACTORS: dict[Remedy, float] = {"x1.5": 1.5, "x2": 2.0}
EMBEDDED_STORAGES: tuple[str, ...] = ("sqlite", "journal")
SERVER_STORAGES: tuple[str, ...] = ("postgresql", "mysql", "redis")
ALL_STORAGES = EMBEDDED_STORAGES + SERVER_STORAGES

SHARED_SEED = 42
PER_WORKER_SEED_BASE = 1000

# 24 points over two parameters of different types. With 4 workers of 6 trials each, worker
# orders that disagree leave a point unevaluated unless the four random 6-subsets happen to
# partition the grid: probability C(18,6) C(12,6) / C(24,6)^3 = 7.0e-9 per run.
DEFAULT_SPACE: SearchSpace = (
    ("x", (0, 1, 2, 3, 4, 5)),
    ("y", ("a", "b", "c", "d")),
)
DEFAULT_WORKERS = 4

# Every grid point is a trial: a storage write, and a row of the run record's trial log
# (about 130 bytes of JSON each). GridSampler also re-reads every trial before each new one,
# so a run's time grows with the square of the grid. 4096 points keep a run record near
# 0.5 MB; a 10^6-point grid would write 128 MB per run and 10^7 points exhaust memory.
MAX_GRID_POINTS = 4096
# The bound of `run --workers`. Each worker is a process (or a thread, in threads mode) with its
# own storage connection: PostgreSQL allows 100 connections by default, MariaDB 151, and a run
# shares the server with the other lanes.
MAX_WORKERS = 64


class ScenarioError(ReproError, ValueError):
    """A scenario or search space that cannot be run; the message says what to change."""


def validate_space(space: Mapping[str, Sequence[object]]) -> SearchSpace:
    """Check a user-given search space and freeze it; raise ScenarioError on the first defect."""
    if not isinstance(space, Mapping) or not space:
        raise ScenarioError(
            'search space must be a non-empty JSON object of lists, e.g. {"x": [0, 1, 2]}'
        )
    frozen: list[tuple[str, tuple[GridValue, ...]]] = []
    for name, values in space.items():
        if not isinstance(name, str) or not name:
            raise ScenarioError(f"parameter name {name!r} must be a non-empty string")
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
            raise ScenarioError(f"parameter {name!r} needs a non-empty list of values")
        for value in values:
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise ScenarioError(
                    f"parameter {name!r} has value {value!r}: GridSampler takes "
                    "str, int, float, bool or null"
                )
        frozen.append((name, tuple(values)))  # type: ignore[arg-type]
    size = math.prod(len(values) for _, values in frozen)
    if size > MAX_GRID_POINTS:
        raise ScenarioError(
            f"the search space has {size} grid points; the bound is {MAX_GRID_POINTS} "
            "(every point is a trial kept in the run record)"
        )
    return tuple(sorted(frozen))


def same_choice(a: GridValue, b: GridValue) -> bool:
    """Whether Optuna records ``a`` and ``b`` as one choice: ``CategoricalDistribution`` stores
    a value as the first choice equal to it, so 1, 1.0 and True are one choice, and so are 0,
    0.0, -0.0 and False. Two NaNs count as one value too (the run record cannot tell them
    apart). "1" and 1 are different choices."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def check_distinct(space: SearchSpace) -> None:
    """Refuse a parameter whose values Optuna would record as one choice: the run would report
    a perfect grid as one point missing and another evaluated twice. (The corpus probes such
    values on purpose; a user-given ``--space`` must not hit them by accident.)"""
    for name, values in space:
        for i, a in enumerate(values):
            for b in values[:i]:
                if same_choice(a, b):
                    raise ScenarioError(
                        f"parameter {name!r} has {b!r} and {a!r}, which Optuna records as one "
                        "choice; give each value once"
                    )


def space_digest(space: SearchSpace) -> str:
    """A short hash of the canonical space: names sorted (GridSampler sorts them too), values
    in their given order and with their type, so 1, 1.0, True and "1" hash apart."""
    canonical = [[name, [[type(v).__name__, repr(v)] for v in values]] for name, values in space]
    return hashlib.sha256(json.dumps(sorted(canonical)).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Scenario:
    """One reproducible setting. ``repetition`` is not part of it: the runner repeats it."""

    mode: Mode
    seed_policy: SeedPolicy
    storage: str
    workers: int = DEFAULT_WORKERS
    search_space: SearchSpace = DEFAULT_SPACE
    # None: the grid split evenly, ceil(grid_size / workers) per worker, as in the upstream
    # report where each of N scripts runs its share and MaxTrialsCallback caps the total.
    # An explicit budget equal to that split is stored as None: it is the same shape.
    trials_per_worker: int | None = None
    # Names the search space in the id instead of its hash (the corpus: "case-007").
    label: str = field(default="", compare=False)
    remedy: Remedy = "grid"

    def __post_init__(self) -> None:
        if self.remedy not in REMEDIES:
            raise ScenarioError(
                f"unknown remedy {self.remedy!r}; choose one of {', '.join(REMEDIES)}"
            )
        if self.mode not in MODES:
            raise ScenarioError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if self.seed_policy not in SEED_POLICIES:
            raise ScenarioError(
                f"unknown seed policy {self.seed_policy!r}; choose one of "
                f"{', '.join(SEED_POLICIES)}"
            )
        if self.workers < 1:
            raise ScenarioError(f"workers must be at least 1, got {self.workers}")
        if self.trials_per_worker is not None and self.trials_per_worker < 1:
            raise ScenarioError(
                f"trials_per_worker must be at least 1, got {self.trials_per_worker}"
            )
        validate_space(dict(self.search_space))
        if self.trials_per_worker == math.ceil(self.grid_size / self.workers):
            object.__setattr__(self, "trials_per_worker", None)

    @property
    def grid_size(self) -> int:
        return math.prod(len(values) for _, values in self.search_space)

    @property
    def budget(self) -> int:
        """Trials the study as a whole may run: the grid size, or more for the "x" remedies."""
        return math.ceil(self.grid_size * BUDGET_FACTORS.get(self.remedy, 1.0))

    @property
    def trials_each(self) -> int:
        """The trials each worker runs: ``trials_per_worker`` when given, else the even split
        of the budget (the field stays None then, so that the id names no budget). Run records
        store this effective number as their ``trials_per_worker``."""
        if self.trials_per_worker is not None:
            return self.trials_per_worker
        return math.ceil(self.budget / self.workers)

    @property
    def id(self) -> str:
        """Names everything that decides the outcome, so that results of different shapes
        never replace each other: the default grid is ``g24`` (the ids of the committed
        results), any other space ``custom-<hash>``, and a per-worker budget other than the
        even split adds ``-t<trials>``, a remedy other than the plain GridSampler its name."""
        digest = space_digest(self.search_space)
        space = self.label or (
            f"g{self.grid_size}" if digest == space_digest(DEFAULT_SPACE) else f"custom-{digest}"
        )
        budget = "" if self.trials_per_worker is None else f"-t{self.trials_per_worker}"
        remedy = "" if self.remedy == "grid" else f"-{self.remedy}"
        return (
            f"{self.mode}-{self.seed_policy}-{self.storage}-w{self.workers}-{space}{budget}{remedy}"
        )

    def seed_for(self, worker_index: int) -> int | None:
        if self.seed_policy == "none":
            return None
        if self.seed_policy == "shared":
            return SHARED_SEED
        return PER_WORKER_SEED_BASE + worker_index

    def space_dict(self) -> dict[str, list[GridValue]]:
        return {name: list(values) for name, values in self.search_space}


def matrix(storages: Iterable[str] = ALL_STORAGES) -> list[Scenario]:
    """Every launch mode x seed policy x storage, on the default grid."""
    return [
        Scenario(mode=mode, seed_policy=policy, storage=storage)
        for storage, mode, policy in itertools.product(storages, MODES, SEED_POLICIES)
    ]


# Remedies measured by default (`python -m repro run`): the two that upstream recommends, plus
# "more trials" on the #5489 pattern. BruteForceSampler's pick reads the storage through the
# same calls on every storage, so it runs on SQLite only; the enqueued grid's claim is the
# storage's own code (SQLite's unlocked check, a row lock on a server, a journal entry), so it
# runs on one storage of each kind: SQLite, PostgreSQL and Redis (the journal on a server).
# BruteForceSampler with seed None: the seed policies differ only when workers overlap, which
# `--remedies all` measures. The enqueued grid ignores the seed (the queue fixes every point),
# so it runs with seed None only. `--remedies all`: every remedy, seed policy and storage.
DEFAULT_REMEDIES: dict[str, tuple[Remedy, ...]] = {
    "sqlite": (*BRUTE_FORCE, "enqueued", *BUDGET_FACTORS),
    "postgresql": ("enqueued",),
    "redis": ("enqueued",),
}
# Threads in one process are today's "threads" mode (the in-process remedy), not a new row.
REMEDY_MODES: tuple[Mode, ...] = ("sequential", "concurrent")


def remedy_matrix(storages: Iterable[str] = ALL_STORAGES, *, full: bool = False) -> list[Scenario]:
    """The remedy scenarios: every one with ``full``, else the cheap default set."""
    out: list[Scenario] = []
    for storage in storages:
        chosen = set(REMEDIES) - {"grid"} if full else set(DEFAULT_REMEDIES.get(storage, ()))
        for mode in REMEDY_MODES:
            policies: tuple[SeedPolicy, ...] = SEED_POLICIES if full else ("none",)
            for brute in (r for r in BRUTE_FORCE if r in chosen):
                out += [Scenario(mode, p, storage, remedy=brute) for p in policies]
            if "enqueued" in chosen:
                out.append(Scenario(mode, "none", storage, remedy="enqueued"))
            # More trials on the #5489 pattern (sequential) unless every remedy is asked for.
            if full or mode == "sequential":
                out += [
                    Scenario(mode, "none", storage, remedy=r) for r in BUDGET_FACTORS if r in chosen
                ]
    return out


UPSTREAM = Scenario(mode="sequential", seed_policy="none", storage="sqlite")
"""The pattern of optuna/optuna#5489: N scripts one after another on one SQLite file."""


def select(scenarios: Sequence[Scenario], patterns: Sequence[str]) -> list[Scenario]:
    """Scenarios whose id matches any shell-style pattern; every pattern must match one."""
    if not patterns:
        return list(scenarios)
    chosen = [s for s in scenarios if any(fnmatch.fnmatchcase(s.id, p) for p in patterns)]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(s.id, pattern) for s in scenarios):
            known = ", ".join(s.id for s in scenarios[:3])
            raise ScenarioError(f"no scenario matches {pattern!r} (ids look like {known}, ...)")
    return chosen
