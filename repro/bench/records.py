"""What a bench measured, as plain records in ``results/bench.json``: per storage and worker
count, the time of every harness run and every plain-script run, the workers' start-up, and
the ratio of the medians. Medians and the ratio are derived from the stored times, so a
reader can recompute them from the JSON alone.

Nothing here imports Optuna: the records are read and checked without it.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro.jsonfile import from_fields, load_json, shallow_fields, write_json
from repro.scenarios import DEFAULT_WORKERS

SCHEMA = 1
# The harness may cost at most a tenth more than the plain script doing the same runs.
GOAL_RATIO = 1.1
MEASURED = "measured"
SKIPPED = "skipped"


@dataclass(frozen=True)
class Run:
    """One run of either side: wall seconds from storage creation to cleanup, and per worker
    its start-up (fork to study loaded) and its time in ``optimize``. ``error`` is the cause
    when the run did not finish; its times then count for nothing."""

    seconds: float
    startup_s: list[float | None] = field(default_factory=list)
    optimize_s: list[float] = field(default_factory=list)
    complete: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Run:
        return from_fields(cls, data)


def median_seconds(runs: Sequence[Run]) -> float | None:
    """Median wall seconds of the runs that finished; None when none did."""
    done = [r.seconds for r in runs if r.error is None]
    return round(statistics.median(done), 4) if done else None


def where_the_time_went(runs: Sequence[Run]) -> dict[str, float] | None:
    """Medians over the finished runs of where a run's time went: ``startup_s`` and
    ``optimize_s`` summed over its workers, and ``outside_s``, the rest of its wall time
    (``seconds`` less both sums: making and removing the storage, the study's creation and
    read-back where the workers do not do them, forking and reaping the workers, the
    metrics). None when no run finished."""
    done = [r for r in runs if r.error is None]
    if not done:
        return None
    startup = [sum(s for s in r.startup_s if s is not None) for r in done]
    optimize = [sum(r.optimize_s) for r in done]
    outside = [r.seconds - a - b for r, a, b in zip(done, startup, optimize)]
    return {
        name: round(statistics.median(values), 4)
        for name, values in (
            ("startup_s", startup),
            ("optimize_s", optimize),
            ("outside_s", outside),
        )
    }


def ratio_of(harness: float | None, plain: float | None) -> float | None:
    """harness / plain, or None when either side has no finished run."""
    if harness is None or plain is None or plain <= 0:
        return None
    return round(harness / plain, 3)


@dataclass(frozen=True)
class StorageBench:
    """One storage at one worker count: ``harness`` and ``plain`` runs in the order they ran
    (interleaved), or a ``skip_reason`` when the server did not answer."""

    storage: str
    scenario: str
    status: str = MEASURED
    skip_reason: str | None = None
    harness: list[Run] = field(default_factory=list)
    plain: list[Run] = field(default_factory=list)
    # An entry that names no count is from a bench that timed the default scenario only.
    workers: int = DEFAULT_WORKERS

    @property
    def label(self) -> str:
        """``sqlite w4``: how a line or a list of entries names this one."""
        return f"{self.storage} w{self.workers}"

    @property
    def harness_median_s(self) -> float | None:
        return median_seconds(self.harness)

    @property
    def plain_median_s(self) -> float | None:
        return median_seconds(self.plain)

    @property
    def ratio(self) -> float | None:
        return ratio_of(self.harness_median_s, self.plain_median_s)

    @property
    def startup_median_s(self) -> float | None:
        """Median start-up of a harness worker, over every worker of every finished run."""
        values = [s for r in self.harness if r.error is None for s in r.startup_s if s is not None]
        return round(statistics.median(values), 4) if values else None

    def to_json(self) -> dict[str, Any]:
        data = shallow_fields(self)
        data["harness"] = [r.to_json() for r in self.harness]
        data["plain"] = [r.to_json() for r in self.plain]
        # Derived, stored so that the figures a reader quotes are in the file.
        data["harness_median_s"] = self.harness_median_s
        data["plain_median_s"] = self.plain_median_s
        data["ratio"] = self.ratio
        data["startup_median_s"] = self.startup_median_s
        data["harness_where"] = where_the_time_went(self.harness)
        data["plain_where"] = where_the_time_went(self.plain)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StorageBench:
        return from_fields(
            cls,
            data,
            harness=[Run.from_json(r) for r in data.get("harness", [])],
            plain=[Run.from_json(r) for r in data.get("plain", [])],
        )


@dataclass(frozen=True)
class BenchFile:
    optuna_version: str
    python: str
    platform: str
    packages: dict[str, str]
    storages: list[StorageBench]
    repetitions: int
    command: str = ""
    wall_seconds: float = 0.0
    goal_ratio: float = GOAL_RATIO
    # How the plain side runs, in words, so the file says what its ratio compares.
    method: str = ""

    def over_goal(self) -> list[StorageBench]:
        """Measured entries whose ratio is above the goal or could not be computed."""
        return [
            s
            for s in self.storages
            if s.status == MEASURED and (s.ratio is None or s.ratio > self.goal_ratio)
        ]

    def to_json(self) -> dict[str, Any]:
        data = shallow_fields(self)
        data["storages"] = [s.to_json() for s in self.storages]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchFile:
        return from_fields(
            cls, data, storages=[StorageBench.from_json(s) for s in data.get("storages", [])]
        )


def save(path: Path, bench: BenchFile) -> None:
    """Write ``bench`` atomically as strict JSON: a NaN or an infinity is refused here rather
    than written as a token that strict parsers reject."""
    data = bench.to_json()
    json.dumps(data, allow_nan=False)  # raises ValueError: a bug, not bad input
    write_json(path, data, schema=SCHEMA)


def load(path: Path) -> BenchFile:
    return BenchFile.from_json(load_json(path, schema=SCHEMA))
