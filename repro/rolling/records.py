"""Plain records of a rolling-upgrade measurement, the outcome of each case, and the JSON file
(``results/rolling.json``, strict JSON, schema checked). No Optuna here."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro.jsonfile import FormatError, from_fields, load_json, shallow_fields

SCHEMA = 1
FILENAME = "rolling.json"

# Storage compatibility, an outcome of its own: a release that will not open the storage the
# other created is "refused", with the line it said; "ok" once both releases ran a worker on it.
OK = "ok"
REFUSED = "refused"
NOT_SHOWN = "not-shown"  # no refusal, but no worker of one release finished either

# Outcome of a case (``CaseRecord.outcome``), the first that applies: not-run (the harness
# could not run it), refused, hung (a worker past its timeout), worker-failed, collect-failed,
# lost-points, duplicates (without loss), exact.
EXACT = "exact"

# What RDBStorage raises when the database's alembic revision is not its own head
# (optuna/storages/_rdb/storage.py, check_table_schema_compatibility, 3.x to 5.x).
REFUSAL = re.compile(r"[^\n]*is no longer compatible with the table schema[^\n]*")


@dataclass(frozen=True)
class WorkerRun:
    index: int
    version: str
    exit_code: int | None  # None: killed by the harness (timed out, or stopped)
    seconds: float
    stderr_tail: str
    order_fingerprint: str | None = None  # the worker's grid order, from its stdout
    timed_out: bool = False
    # Killed because another concurrent worker had failed, so the barrier could never complete.
    stopped: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def refusal(stderr: str) -> str | None:
    """The line in which Optuna refused the storage's schema, or None."""
    found = REFUSAL.search(stderr)
    return found.group().strip() if found else None


@dataclass(frozen=True)
class CaseRecord:
    case_id: str
    older: str
    newer: str
    creator: str
    seed_policy: str
    mode: str
    storage: str
    scenario: str
    study: str
    workers: list[WorkerRun]
    collected_with: str  # the release whose environment read the study back
    collect_error: str | None
    trials: int
    complete: int
    missing: int
    duplicates: int
    same_id_duplicates: int
    colliding_id_duplicates: int
    seconds: float
    expected: str  # the rolling expectation row's outcome for this case
    expected_storage: str  # ok | refused
    trial_log: list[dict[str, Any]] = field(default_factory=list)
    # The harness could not run the case (e.g. the server would not make its database).
    error: str | None = None

    @property
    def orders_distinct(self) -> int:
        return len({w.order_fingerprint for w in self.workers if w.order_fingerprint})

    @property
    def refusal(self) -> str | None:
        return next((r for w in self.workers if (r := refusal(w.stderr_tail))), None)

    @property
    def storage_compat(self) -> str:
        if self.refusal is not None:
            return REFUSED
        finished = {w.version for w in self.workers if w.ok}
        return OK if {self.older, self.newer} <= finished else NOT_SHOWN

    @property
    def outcome(self) -> str:
        if self.error is not None:
            return "not-run"
        if self.storage_compat == REFUSED:
            return "refused"
        if any(w.timed_out for w in self.workers):
            return "hung"
        if any(not w.ok for w in self.workers):
            return "worker-failed"
        if self.collect_error is not None:
            return "collect-failed"
        if self.missing:
            return "lost-points"
        if self.duplicates:
            return "duplicates"
        return EXACT

    def to_json(self) -> dict[str, Any]:
        data = shallow_fields(self)
        data["workers"] = [w.to_json() for w in self.workers]
        # Derived, stored so that every figure the report prints is in the JSON.
        data["orders_distinct"] = self.orders_distinct
        data["refusal"] = self.refusal
        data["storage_compat"] = self.storage_compat
        data["outcome"] = self.outcome
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CaseRecord:
        return from_fields(
            cls, data, workers=[from_fields(WorkerRun, w) for w in data.get("workers", [])]
        )


@dataclass(frozen=True)
class Environment:
    version: str
    created: bool
    install_seconds: float
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RollingFile:
    cases: list[CaseRecord]
    environments: list[Environment]
    command: str = ""
    python: str = ""
    platform: str = ""
    jobs: int = 1
    wall_seconds: float = 0.0
    # Pairs as measured, older first, "latest" resolved.
    pairs: list[list[str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The measurements; ``verdict.save`` adds the verdicts decided from them (this
        module, which the verdicts read, does not decide)."""
        data = shallow_fields(self)
        data["cases"] = [c.to_json() for c in self.cases]
        data["environments"] = [e.to_json() for e in self.environments]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RollingFile:
        return from_fields(
            cls,
            data,
            cases=[CaseRecord.from_json(c) for c in data.get("cases", [])],
            environments=[from_fields(Environment, e) for e in data.get("environments", [])],
        )


def merge(earlier: RollingFile | None, fresh: RollingFile, replaced: set[str]) -> RollingFile:
    """``fresh`` plus the cases of ``earlier`` it did not re-run (a run with fewer pairs or
    storages keeps the rest); wall seconds add up over the runs that wrote the file."""
    if earlier is None:
        return fresh
    kept = [c for c in earlier.cases if c.case_id not in replaced]
    versions = {e.version for e in fresh.environments}
    pairs = fresh.pairs + [p for p in earlier.pairs if p not in fresh.pairs]
    return RollingFile(
        cases=kept + fresh.cases,
        environments=[e for e in earlier.environments if e.version not in versions]
        + fresh.environments,
        command=f"{earlier.command}; {fresh.command}" if kept else fresh.command,
        python=fresh.python,
        platform=fresh.platform,
        jobs=fresh.jobs,
        wall_seconds=round(earlier.wall_seconds + fresh.wall_seconds, 1)
        if kept
        else fresh.wall_seconds,
        pairs=pairs,
    )


def load(path: Path) -> RollingFile:
    raw = load_json(path, schema=SCHEMA)
    try:
        return RollingFile.from_json(raw)
    except (TypeError, KeyError, ValueError) as exc:
        raise FormatError(f"{path}: not a rolling-upgrade file ({exc}); move it away") from None
