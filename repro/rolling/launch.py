"""One case: a fresh storage, each worker a real subprocess ``<env python> -m repro worker`` in
the environment of its own release, then ``collect`` in the creator's environment.

Every subprocess has a deadline: a worker that hangs is killed and recorded with its stderr
tail, never waited for. A concurrent worker that fails leaves the others waiting at the storage
barrier for a round that cannot complete, so they are stopped at once and recorded as such.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import services
from repro.expectations import rolling_expected, storage_expected
from repro.paths import relativize
from repro.rolling.plan import Case
from repro.rolling.records import CaseRecord, WorkerRun
from repro.scenarios import SERVER_STORAGES
from repro.storages import embedded
from repro.timeline.envs import CHECKOUT

TAIL_LINES = 6
TAIL_CHARS = 400


@dataclass(frozen=True)
class Limits:
    worker: float = 120.0  # seconds one worker process may take
    barrier: float = 60.0  # concurrent: seconds a worker waits for the others at a round
    collect: float = 120.0


def tail(text: str) -> str:
    """The last non-empty lines of a process's stderr, each cut to a readable length."""
    kept = [line[:TAIL_CHARS] for line in relativize(text).splitlines() if line.strip()]
    return "\n".join(kept[-TAIL_LINES:])


@contextmanager
def fresh_storage(kind: str, study: str) -> Iterator[str]:
    """A storage URL nobody has used: a file in a scratch directory, or a database (Redis key
    prefix) of its own on the server, removed afterwards."""
    if kind in SERVER_STORAGES:
        with services.isolated(kind, study) as spec:
            yield spec.location
        return
    with tempfile.TemporaryDirectory(prefix="grid-repro-rolling-") as scratch:
        yield embedded(kind, scratch).location


def worker_command(
    python: Path, url: str, study: str, case: Case, index: int, limits: Limits
) -> list[str]:
    return [
        str(python),
        "-m",
        "repro",
        "worker",
        "--storage",
        url,
        "--study",
        study,
        "--scenario",
        case.scenario.id,
        "--worker-index",
        str(index),
        "--barrier-timeout",
        f"{limits.barrier:g}",
    ]


def _fingerprint(stdout: str) -> str | None:
    """The worker prints its result as one JSON line last; it carries the grid order."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            value = data.get("order_fingerprint")
            return value if isinstance(value, str) else None
    return None


class _Worker:
    """One worker subprocess; its output goes to files, so a chatty worker never blocks on a
    full pipe while the harness waits for another."""

    def __init__(self, index: int, version: str, command: list[str], logs: Path) -> None:
        self.index = index
        self.version = version
        self._out = logs / f"worker-{index}.out"
        self._err = logs / f"worker-{index}.err"
        self.began = time.monotonic()
        with self._out.open("w") as out, self._err.open("w") as err:
            self.proc = subprocess.Popen(command, cwd=CHECKOUT, stdout=out, stderr=err, text=True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def record(self, *, timed_out: bool = False, stopped: bool = False) -> WorkerRun:
        note = ""
        if timed_out:
            note = "\n(killed by the harness: no exit within the worker timeout)"
        elif stopped:
            note = "\n(stopped by the harness: another worker failed, so no round could complete)"
        return WorkerRun(
            index=self.index,
            version=self.version,
            exit_code=None if (timed_out or stopped) else self.proc.returncode,
            seconds=round(time.monotonic() - self.began, 2),
            stderr_tail=tail(self._err.read_text(errors="replace")) + note,
            order_fingerprint=_fingerprint(self._out.read_text(errors="replace")),
            timed_out=timed_out,
            stopped=stopped,
        )


Command = tuple[str, list[str]]  # (release, argv)


def run_sequential(commands: list[Command], limit: float, logs: Path) -> list[WorkerRun]:
    """One worker after another, as several scripts started in turn (#5489); a worker that
    fails does not stop the next, as it would not on a cluster."""
    runs = []
    for index, (version, command) in enumerate(commands):
        worker = _Worker(index, version, command, logs)
        try:
            worker.proc.wait(timeout=limit)
            runs.append(worker.record())
        except subprocess.TimeoutExpired:
            worker.kill()
            runs.append(worker.record(timed_out=True))
    return runs


def run_concurrent(commands: list[Command], limit: float, logs: Path) -> list[WorkerRun]:
    """Every worker at once; they meet at the storage barrier at every objective call."""
    workers = [_Worker(i, version, command, logs) for i, (version, command) in enumerate(commands)]
    deadline = time.monotonic() + limit
    while (remaining := deadline - time.monotonic()) > 0:
        codes = [w.proc.poll() for w in workers]
        if None not in codes or any(code not in (None, 0) for code in codes):
            break
        running = next(w for w, code in zip(workers, codes) if code is None)
        with suppress(subprocess.TimeoutExpired):
            running.proc.wait(timeout=min(0.2, remaining))
    failed = any(w.proc.poll() not in (None, 0) for w in workers)
    runs = []
    for worker in workers:
        if worker.proc.poll() is not None:
            runs.append(worker.record())
            continue
        worker.kill()
        runs.append(worker.record(timed_out=not failed, stopped=failed))
    return runs


def _create(python: Path, url: str, study: str, case: Case, limit: float) -> str | None:
    """The creator's release creates the study before concurrent workers start, so that who
    created it is not left to the race; returns the failure, or None."""
    command = [str(python), "-m", "repro.rolling", "create", "--storage", url, "--study", study]
    command += ["--scenario", case.scenario.id]
    try:
        done = subprocess.run(
            command, cwd=CHECKOUT, capture_output=True, text=True, timeout=limit, check=False
        )
    except subprocess.TimeoutExpired:
        return f"creating the study took over {limit:g} s"
    return None if done.returncode == 0 else tail(done.stderr) or f"exit {done.returncode}"


def _collect(
    python: Path, url: str, study: str, limit: float
) -> tuple[dict[str, Any] | None, str | None]:
    command = [str(python), "-m", "repro", "collect", "--storage", url, "--study", study]
    try:
        done = subprocess.run(
            command, cwd=CHECKOUT, capture_output=True, text=True, timeout=limit, check=False
        )
    except subprocess.TimeoutExpired:
        return None, f"collect took over {limit:g} s"
    if done.returncode != 0:
        return None, tail(done.stderr) or f"collect exited {done.returncode}"
    try:
        data = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        return None, f"collect printed no JSON ({exc.msg})"
    return data, None


def run_case(case: Case, pythons: Mapping[str, Path], limits: Limits) -> CaseRecord:
    """Measure one case on a fresh storage; never raises: what went wrong, down to a server
    that would not make or drop the case's database, is in the record."""
    began = time.monotonic()
    try:
        return _run_case(case, pythons, limits)
    except Exception as exc:
        return _record(case, "-", [], None, began, error=f"{type(exc).__name__}: {exc}")


def _run_case(case: Case, pythons: Mapping[str, Path], limits: Limits) -> CaseRecord:
    study = f"rolling-{uuid.uuid4().hex[:10]}"
    began = time.monotonic()
    with fresh_storage(case.storage, study) as url, tempfile.TemporaryDirectory() as logdir:
        logs = Path(logdir)
        commands = [
            (
                case.version_of(i),
                worker_command(pythons[case.version_of(i)], url, study, case, i, limits),
            )
            for i in range(case.workers)
        ]
        creator = pythons[case.creator]
        if case.mode == "sequential":
            runs = run_sequential(commands, limits.worker, logs)
        else:
            failure = _create(creator, url, study, case, limits.collect)
            if failure is not None:
                runs = [
                    WorkerRun(i, v, None, 0.0, f"not started: the creator failed: {failure}")
                    for i, (v, _) in enumerate(commands)
                ]
            else:
                runs = run_concurrent(commands, limits.worker, logs)
        collected = _collect(creator, url, study, limits.collect)
    return _record(case, study, runs, collected, began)


def _record(
    case: Case,
    study: str,
    runs: list[WorkerRun],
    collected: tuple[dict[str, Any] | None, str | None] | None,
    began: float,
    error: str | None = None,
) -> CaseRecord:
    data, collect_error = collected or (None, None)
    data = data or {}
    row = rolling_expected(case.older, case.newer, case.mode, case.seed_policy)
    return CaseRecord(
        case_id=case.id,
        older=case.older,
        newer=case.newer,
        creator=case.creator,
        seed_policy=case.seed_policy,
        mode=case.mode,
        storage=case.storage,
        scenario=case.scenario.id,
        study=study,
        workers=runs,
        collected_with=case.creator,
        collect_error=collect_error,
        trials=int(data.get("trials", 0)),
        complete=int(data.get("complete", 0)),
        missing=int(data.get("missing", 0)),
        duplicates=int(data.get("duplicates", 0)),
        same_id_duplicates=int(data.get("same_id_duplicates", 0)),
        colliding_id_duplicates=int(data.get("colliding_id_duplicates", 0)),
        seconds=round(time.monotonic() - began, 1),
        expected=row.outcome,
        expected_storage=storage_expected(case.older, case.newer, case.storage).outcome,
        trial_log=list(data.get("trial_log", [])),
        error=error,
    )
