"""Plain records of what was measured, their JSON form, and how they reach the results file.

A finished run is durable the moment it finishes: the lane that ran it appends it, fsync'd,
to a write-ahead log next to the results file (``Journal``), and ``fold`` derives
``optuna-<version>.json`` from the log, atomically, under a lock, at the end of a run, on an
interrupt, and at the start of any later ``run`` or ``report`` that finds the log of a dead
run (crash recovery). See ``REPLACEMENT_RULE`` (and ``merge``, which applies it) for which
runs a fold keeps.

Nothing here imports Optuna: the report and the tests read results without it.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro import remedies
from repro.jsonfile import (
    FormatError,
    check_types,
    from_fields,
    load_json,
    shallow_fields,
    tag_nonfinite,
    untag_nonfinite,
    write_json,
)
from repro.stats import mean_ci95, wilson95
from repro.versions import version_key

SCHEMA = 1


@dataclass(frozen=True)
class RunRecord:
    scenario: str
    mode: str
    seed_policy: str
    storage: str
    workers: int
    grid_size: int
    repetition: int
    trials: int
    complete: int
    distinct: int
    duplicates: int
    missing: int
    same_id_duplicates: int
    colliding_id_duplicates: int
    worker_orders_distinct: int
    error: str | None
    trials_per_worker: int = 0
    search_space: list[list[Any]] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    study_name: str = ""
    duplicated_points: list[dict[str, Any]] = field(default_factory=list)
    missing_points: list[str] = field(default_factory=list)
    worker_results: list[dict[str, Any]] = field(default_factory=list)
    trial_log: list[dict[str, Any]] = field(default_factory=list)
    # Set on runs of a corpus case (repro/corpus): the report's scenario table leaves them out.
    case_id: str | None = None
    # The remedy a run measured ("grid" is today's GridSampler scenario), and the
    # tracebacks of workers that crashed under it; such a run keeps the others' trials.
    remedy: str = "grid"
    worker_crashes: list[str] = field(default_factory=list)

    # Removing the run's storage failed (e.g. the server died): kept apart from ``error``
    # because the measurement itself is complete.
    teardown_error: str | None = None
    # The `run` invocation that measured it (``Invocation.id``); "" in files written before
    # invocations were recorded, which the merge treats as one invocation long ago.
    invocation: str = ""

    @property
    def in_matrix(self) -> bool:
        """A run of the GridSampler matrix: not a corpus case, not a remedy (their own
        sections read those)."""
        return self.case_id is None and self.remedy == "grid"

    @property
    def measured(self) -> bool:
        """False for a run that measured nothing (an error and no trial read back)."""
        return self.error is None or self.trials > 0

    def to_json(self) -> dict[str, Any]:
        # NaN and the infinities (grid values, params) as ["float", "nan"]: strict JSON.
        # No nested dataclass here, and tag_nonfinite builds new lists and dicts throughout.
        data: dict[str, Any] = tag_nonfinite(shallow_fields(self))
        # Files written before these fields existed stay as they are.
        if data["teardown_error"] is None:
            del data["teardown_error"]
        if not data["invocation"]:
            del data["invocation"]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        return from_fields(cls, untag_nonfinite(check_types(cls, data)))


@dataclass(frozen=True)
class Invocation:
    """One `run` invocation whose runs a results file holds: what it was asked, where, and
    when it ran (Unix seconds). The file's header fields are derived from these."""

    id: str
    command: str
    started: float
    ended: float
    python: str = ""
    platform: str = ""
    packages: dict[str, str] = field(default_factory=dict)
    repetitions: int = 0
    forced_runs: int = 0
    jobs: int = 1
    wall_seconds: float = 0.0
    target: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Invocation:
        return from_fields(cls, check_types(cls, data))

    def precedes(self, other: Invocation) -> bool:
        """Whether this invocation had ended before ``other`` started (no overlap)."""
        return self.ended < other.started


@dataclass(frozen=True)
class ResultsFile:
    optuna_version: str
    python: str
    platform: str
    packages: dict[str, str]
    runs: list[RunRecord]
    command: str = ""
    repetitions: int = 0
    # Runs per scenario whose outcome the code forces (0: every scenario ran ``repetitions``
    # times, as before the rule in expectations.runs_needed).
    forced_runs: int = 0
    jobs: int = 1
    wall_seconds: float = 0.0
    # Provenance of a non-release build measured via `nox -s target` (repro/targets.py).
    target: dict[str, Any] = field(default_factory=dict)
    # The invocations whose runs the file holds; the fields above are derived from them.
    invocations: list[Invocation] = field(default_factory=list)
    schema: int = SCHEMA

    def to_json(self) -> dict[str, Any]:
        data = shallow_fields(self)
        data["runs"] = [r.to_json() for r in self.runs]
        if self.invocations:
            data["invocations"] = [i.to_json() for i in self.invocations]
        else:
            del data["invocations"]  # files written before invocations were recorded
        # Derived from the runs, stored so that every figure the report prints is in the JSON.
        data["summary"] = [s.to_json() for s in summarize(self.runs)]
        data["run_count"] = self.run_count
        if any(r.remedy != "grid" for r in self.runs):
            data["remedy_cells"] = remedies.derived(self)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResultsFile:
        check_types(cls, data)
        return from_fields(
            cls,
            data,
            runs=[RunRecord.from_json(r) for r in data.get("runs", [])],
            invocations=[Invocation.from_json(i) for i in data.get("invocations", [])],
        )

    @property
    def run_count(self) -> int:
        return len(self.runs)

    @property
    def errors(self) -> list[RunRecord]:
        return [r for r in self.runs if r.error is not None]


def results_path(directory: Path, optuna_version: str) -> Path:
    return directory / f"optuna-{optuna_version}.json"


def save(path: Path, results: ResultsFile) -> None:
    write_json(path, results.to_json(), schema=SCHEMA)


def load(path: Path) -> ResultsFile:
    data = load_json(path, schema=SCHEMA)
    try:
        return ResultsFile.from_json(data)
    except (TypeError, KeyError, ValueError, FormatError) as exc:
        raise FormatError(f"{path}: not a results file ({exc}); move it away") from None


def load_all(directory: Path, skipped: list[str] | None = None) -> list[ResultsFile]:
    """Every ``optuna-*.json`` in ``directory``, oldest Optuna release first. With
    ``skipped``, a file that cannot be read is left out and its one-line reason (naming the
    file) appended there; without it, the first such file raises FormatError."""
    files = []
    for path in sorted(directory.glob("optuna-*.json")):
        try:
            files.append(load(path))
        except FormatError as exc:
            if skipped is None:
                raise
            skipped.append(str(exc))
    return sorted(files, key=lambda r: version_key(r.optuna_version))


REPLACEMENT_RULE = (
    "Which runs a results file keeps, per scenario: the runs of one `run` invocation replace "
    "the earlier runs of that scenario only when every one of its runs of it finished without "
    "an error and the earlier invocation had ended before it started. Otherwise both are "
    "kept: a run that recorded an error (a crash, an outage, a full disk, a timeout) replaces "
    "nothing and is kept beside the measured runs, with the trials it read back, shown as an "
    "error and never counted as lost points; runs of two invocations that overlap in time "
    "are both kept; runs of other scenarios are never touched."
)

# Runs of files written before invocations were recorded: one invocation long ago.
LEGACY = ""


def merge(runs: Sequence[RunRecord], invocations: Mapping[str, Invocation]) -> list[RunRecord]:
    """The runs a results file keeps of ``runs`` (earlier and fresh alike, each naming its
    invocation), in their order: ``REPLACEMENT_RULE``. Depends on nothing but the runs and
    the invocations' times, so folding logs in any order gives the same file."""
    by_scenario: dict[str, dict[str, list[RunRecord]]] = {}
    for run in runs:
        by_scenario.setdefault(run.scenario, {}).setdefault(run.invocation, []).append(run)
    dropped: set[tuple[str, str]] = set()
    for scenario, groups in by_scenario.items():
        clean = [
            invocations[i] for i, group in groups.items() if all(r.error is None for r in group)
        ]
        for i in groups:
            if any(invocations[i].precedes(other) for other in clean):
                dropped.add((scenario, i))
    return [r for r in runs if (r.scenario, r.invocation) not in dropped]


def describe(invocations: Sequence[Invocation]) -> dict[str, Any]:
    """The header fields of a file holding the runs of ``invocations`` (oldest first): the
    environment of the latest; the commands in order; the largest counts; the seconds they
    took together."""
    if not invocations:
        return {}
    latest = invocations[-1]
    return {
        "python": latest.python,
        "platform": latest.platform,
        "packages": latest.packages,
        "target": latest.target,
        "command": " ; ".join(dict.fromkeys(i.command for i in invocations)),
        "repetitions": max(i.repetitions for i in invocations),
        "forced_runs": max(i.forced_runs for i in invocations),
        "jobs": max(i.jobs for i in invocations),
        "wall_seconds": round(sum(i.wall_seconds for i in invocations), 1),
    }


LOCK_NAME = ".repro.lock"
LOCK_TIMEOUT = 60.0


@contextmanager
def folder_lock(directory: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Exclusive ``fcntl`` lock on ``directory``'s results (appends and folds take it).
    Holders keep it for one append or one fold; a dead holder's lock is released by the OS."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = directory / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise FormatError(
                        f"{lock}: held by another process for {timeout:.0f} s; is it hung?"
                    ) from None
                time.sleep(0.01)  # polling a lock, not waiting for another process's work
        yield
    finally:
        os.close(fd)


def _write_line(fd: int, entry: dict[str, Any]) -> None:
    data = (json.dumps(entry, sort_keys=True, allow_nan=False) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]
    os.fsync(fd)


def _alive(log: Path) -> bool:
    """Whether a process of the run that writes ``log`` still holds it open: the run's
    parent holds a shared lock on it and its lanes and workers inherit that descriptor."""
    try:
        fd = os.open(log, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
            return True
        raise
    finally:
        os.close(fd)
    return False


def _read_log(log: Path) -> tuple[dict[str, Any] | None, list[RunRecord]]:
    """The header and the run records of a log; a line cut short by a crash is left out
    (it was never reported as written)."""
    header: dict[str, Any] | None = None
    runs: list[RunRecord] = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "header" in entry:
            header = entry["header"]
        elif "run" in entry:
            runs.append(RunRecord.from_json(entry["run"]))
    return header, runs


@dataclass
class Journal:
    """One run invocation's write-ahead log, ``<dir>/optuna-<version>.<pid>-<hex>.log.jsonl``.

    Its first line is the invocation's header (the ResultsFile fields other than the runs);
    every further line is one finished run, appended by the lane that ran it.
    """

    directory: Path
    version: str
    path: Path
    fd: int

    @classmethod
    def start(cls, directory: Path, version: str, header: dict[str, Any]) -> Journal:
        with folder_lock(directory):  # so that no fold sees the log before it is held
            path = directory / f"optuna-{version}.{os.getpid()}-{uuid.uuid4().hex[:8]}.log.jsonl"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                entry = {
                    **header,
                    "optuna_version": version,
                    "invocation": path.name.removesuffix(".log.jsonl").split(".", 3)[-1],
                    "started": time.time(),
                }
                _write_line(fd, {"header": entry})
            except OSError:
                os.close(fd)  # e.g. a full disk: a log without its header holds nothing
                path.unlink(missing_ok=True)
                raise
        return cls(directory, version, path, fd)

    def append(self, run: RunRecord) -> None:
        """Durable once this returns: the line is written and fsync'd."""
        with folder_lock(self.directory):
            _write_line(self.fd, {"run": run.to_json()})

    def runs(self) -> list[RunRecord]:
        return _read_log(self.path)[1]

    def close(self) -> None:
        os.close(self.fd)


@dataclass(frozen=True)
class Folded:
    """What a fold did: the file as it now is (None: there is none), whether it was
    rewritten, and how many of the folded logs' runs it keeps."""

    results: ResultsFile | None
    written: bool
    fresh: int
    kept: int


def _invocation(log: Path, header: dict[str, Any], ended: float, wall: float | None) -> Invocation:
    """The invocation a log's header describes; a log written before headers carried an id
    and a start time is named after its file and dated by it."""
    started = header.get("started")
    started = float(started) if isinstance(started, (int, float)) else log.stat().st_mtime
    ended = max(ended, started)  # a clock set back between the two
    fields = {k: v for k, v in header.items() if k not in ("invocation", "started")}
    return from_fields(
        Invocation,
        fields,
        id=str(header.get("invocation") or log.name.removesuffix(".log.jsonl")),
        started=started,
        ended=ended,
        wall_seconds=round(ended - started, 1) if wall is None else wall,
    )


def _legacy(earlier: ResultsFile) -> Invocation:
    """The one invocation the runs of a file without recorded invocations stand for."""
    header = {k: v for k, v in vars(earlier).items() if k not in ("runs", "invocations")}
    return from_fields(Invocation, header, id=LEGACY, started=0.0, ended=0.0)


def fold(
    directory: Path,
    version: str,
    own: Journal | None = None,
    *,
    order: Sequence[str] = (),
    wall_seconds: float | None = None,
) -> Folded:
    """Fold ``own`` log (if any) and the logs of dead runs of ``version`` into the results
    file, atomically and under the folder lock, then remove those logs. A re-fold of the
    same log gives the same file, so a crash between the write and the removal is harmless.
    The file is rewritten only when the runs it keeps change; its header fields describe the
    invocations whose runs it keeps. Raises FormatError, before writing anything, when the
    results file cannot be read, and OSError (the logs then stay) when it cannot be written."""
    with folder_lock(directory):
        path = results_path(directory, version)
        earlier = load(path) if path.exists() else None
        logs = [own.path] if own else []
        dead = _dead_logs(directory)
        logs += [log for log, v in dead.items() if v == version and log not in logs]
        if not logs:
            return Folded(earlier, False, 0, 0)
        invocations = {i.id: i for i in (earlier.invocations if earlier else [])}
        base = earlier.runs if earlier else []
        if any(r.invocation == LEGACY for r in base) and earlier is not None:
            invocations.setdefault(LEGACY, _legacy(earlier))
        rank = {scenario: i for i, scenario in enumerate(order)}
        fresh: list[RunRecord] = []
        for log in logs:
            found, runs = _read_log(log)
            mine = own is not None and log == own.path
            ended = time.time() if mine else log.stat().st_mtime
            invocation = _invocation(log, found or {}, ended, wall_seconds if mine else None)
            invocations[invocation.id] = invocation
            runs.sort(key=lambda r: (rank.get(r.scenario, len(rank)), r.repetition))
            fresh += [dataclasses.replace(r, invocation=invocation.id) for r in runs]
        kept = merge([*base, *fresh], invocations)
        written = kept != base
        if written:
            holding = sorted(
                (invocations[i] for i in {r.invocation for r in kept}), key=lambda i: i.started
            )
            start = earlier or ResultsFile(version, "", "", {}, [])
            record = from_fields(
                ResultsFile,
                {**vars(start), **describe(holding)},
                runs=kept,
                invocations=holding,
            )
            save(path, record)
            earlier = record
        for log in logs:
            log.unlink(missing_ok=True)
        fresh_ids = {r.invocation for r in fresh}
        return Folded(earlier, written, len(fresh), sum(r.invocation in fresh_ids for r in kept))


def _dead_logs(directory: Path) -> dict[Path, str]:
    """Logs of runs with no process left, and the Optuna version in their header."""
    found = {}
    for log in sorted(directory.glob("optuna-*.log.jsonl")) if directory.is_dir() else ():
        if _alive(log):
            continue
        header, _ = _read_log(log)
        version = (header or {}).get("optuna_version")
        if isinstance(version, str):
            found[log] = version
        else:
            log.unlink(missing_ok=True)  # cut short before its header: it holds no run
    return found


def recover(directory: Path) -> list[str]:
    """Fold the logs that dead runs left in ``directory`` (every Optuna version); the
    versions folded. Raises FormatError for a results file it cannot read."""
    versions = sorted(set(_dead_logs(directory).values()))
    for version in versions:
        fold(directory, version)
    return versions


@dataclass(frozen=True)
class ScenarioSummary:
    """Aggregates over the repetitions of one scenario; errored runs are counted, not averaged."""

    scenario: str
    mode: str
    seed_policy: str
    storage: str
    runs: int
    errors: int
    runs_with_missing: int
    runs_with_duplicates: int
    missing_mean: float
    missing_max: int
    duplicates_mean: float
    same_id_mean: float
    colliding_id_mean: float
    trials_mean: float
    worker_orders_distinct_max: int
    # [low, high] bounds; lists so that the JSON form equals to_json() exactly.
    missing_ci95: list[float] = field(default_factory=list)
    duplicates_ci95: list[float] = field(default_factory=list)
    missing_share_wilson95: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(runs: list[RunRecord]) -> list[ScenarioSummary]:
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(run.scenario, []).append(run)
    out = []
    for scenario, group in groups.items():
        ok = [r for r in group if r.error is None]
        n = len(ok) or 1
        first = group[0]
        _, missing_lo, missing_hi = mean_ci95([r.missing for r in ok])
        _, dup_lo, dup_hi = mean_ci95([r.duplicates for r in ok])
        share_lo, share_hi = wilson95(sum(1 for r in ok if r.missing), len(ok))
        out.append(
            ScenarioSummary(
                scenario=scenario,
                mode=first.mode,
                seed_policy=first.seed_policy,
                storage=first.storage,
                runs=len(ok),
                errors=len(group) - len(ok),
                runs_with_missing=sum(1 for r in ok if r.missing),
                runs_with_duplicates=sum(1 for r in ok if r.duplicates),
                missing_mean=round(sum(r.missing for r in ok) / n, 2),
                missing_max=max((r.missing for r in ok), default=0),
                duplicates_mean=round(sum(r.duplicates for r in ok) / n, 2),
                same_id_mean=round(sum(r.same_id_duplicates for r in ok) / n, 2),
                colliding_id_mean=round(sum(r.colliding_id_duplicates for r in ok) / n, 2),
                trials_mean=round(sum(r.trials for r in ok) / n, 2),
                worker_orders_distinct_max=max((r.worker_orders_distinct for r in ok), default=0),
                missing_ci95=[round(missing_lo, 2), round(missing_hi, 2)],
                duplicates_ci95=[round(dup_lo, 2), round(dup_hi, 2)],
                missing_share_wilson95=[round(share_lo, 2), round(share_hi, 2)],
            )
        )
    return out
