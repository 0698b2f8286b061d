"""Runs many (scenario, repetition) pairs in parallel lanes, and gathers records.

A lane is a forked process that runs its share of the runs one after another; each run still
forks its own workers. Lanes never share a storage, so they cannot change what GridSampler
decides; they only compete for CPU, which the results record as ``jobs``.

Every lane (and every worker it forks) sits in one process group of its own, so that the
parent can stop them all with one signal. A lane turns SIGTERM into ``Interrupted``: its
``with`` blocks remove the storage of the run under way, and it kills its workers. A lane
appends each finished run to the journal itself, so a run finished is kept whatever happens
to the lane or the parent afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from typing import Any

from repro import runner, services, workers
from repro.fork import (
    CTX,
    STOP_SIGNALS,
    Child,
    ChildFailed,
    call,
    check_interrupted,
    interruptible,
)
from repro.results import Journal, RunRecord
from repro.scenarios import UPSTREAM, Scenario
from repro.storages import StorageError, StorageSpec, embedded, sqlite_file

Job = tuple[Scenario, int]
DATABASE_SERVERS = {"postgresql", "mysql"}
# Relative cost of one run per storage (`nox -s bench` shows where the time goes), for the
# order in which lanes take runs; only the order matters.
STORAGE_COST = {"mysql": 4, "postgresql": 3, "sqlite": 2, "redis": 1, "journal": 0}
# Seconds the lanes get to tear their storages down after SIGTERM, before SIGKILL: the whole
# stop stays within 5 s.
STOP_GRACE = 3.5
# Seconds a server may take to make Optuna's tables in the shared database.
SCHEMA_TIMEOUT = 60.0


def _run_lane(
    todo: Sequence[Job],
    taken: Any,
    storages: Mapping[str, StorageSpec],
    templates: Mapping[str, str],
    timeout: float,
    progress: bool,
    journal: Journal | None,
) -> list[RunRecord]:
    """Take the next job off the shared queue (``taken`` counts the jobs handed out) until
    none is left: a lane that draws cheap runs takes more of them, so no lane idles while
    another still has a queue of its own. Its records go back to the parent as they are (the
    pipe pickles them)."""
    began = time.monotonic()
    records: list[RunRecord] = []
    with interruptible():
        while True:
            with taken.get_lock():
                index = taken.value
                taken.value += 1
            if index >= len(todo):
                break
            scenario, rep = todo[index]
            record = runner.run(
                scenario,
                rep,
                storage=storages.get(scenario.storage),
                template=templates.get(scenario.storage),
                timeout=timeout,
            )
            check_interrupted()  # a run cut short by the stop is not a finished run
            if journal is not None:
                journal.append(record)
            records.append(record)
            if progress:
                _progress(index + 1, len(todo), record, began)
            if (scenario, rep) == (UPSTREAM, 0):
                print(verdict_line(record), file=sys.stderr)
    return records


def verdict_line(record: RunRecord) -> str:
    """The #5489 verdict in one line, printed as soon as its first run is in."""
    from repro import _compat, expectations

    version = _compat.OPTUNA_VERSION
    if record.error:
        measured = f"run failed ({record.error.strip().splitlines()[-1]})"
    elif record.missing:
        measured = f"{record.missing} of {record.grid_size} grid points never evaluated"
    else:
        measured = f"each of the {record.grid_size} grid points evaluated exactly once"
    row = expectations.expected(version, record.mode, record.seed_policy)
    held = "contradicts" if expectations.violations(record, version, row) else "as"
    return f"#5489 verdict, Optuna {version}: {measured} ({held} expected: {row.outcome})"


def schedule(scenarios: Sequence[Scenario], runs: Mapping[str, int]) -> list[Job]:
    """Every (scenario, repetition) to run, in the order lanes take them: the #5489 pattern
    first, so its verdict is printed within seconds; then the costliest storages first, so
    that the cheap runs at the end even out the lanes (longest job first)."""
    todo = [(s, rep) for s in scenarios for rep in range(runs[s.id])]
    return sorted(
        todo,
        key=lambda job: (job != (UPSTREAM, 0), -STORAGE_COST.get(job[0].storage, 0), job[1]),
    )


def _lost(
    todo: Sequence[Job], done: set[tuple[str, int]], deaths: Sequence[str]
) -> list[RunRecord]:
    """Records for the runs no lane finished: the cause is kept, nothing is invented."""
    message = "; ".join(deaths)
    return [
        runner.record(s, rep, [], [], [f"run not measured: {message}"])
        for s, rep in todo
        if (s.id, rep) not in done
    ]


def _stop(lanes: Sequence[Child], kinds: set[str]) -> None:
    """SIGTERM to the lanes' group, STOP_GRACE seconds to tear down, then SIGKILL to whatever
    is left of it (workers of a lane that could not reap them included)."""
    group = lanes[0].process.pid
    if group is None:
        return
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, signum)
        except ProcessLookupError:
            break  # every lane and worker has exited already
        deadline = time.monotonic() + STOP_GRACE
        for lane in lanes:
            lane.process.join(max(0.0, deadline - time.monotonic()))
    services.sweep_scratch(os.getpid())
    services.sweep_databases(os.getpid(), kinds)


def run_all(
    scenarios: Sequence[Scenario],
    repetitions: int | Mapping[str, int],
    *,
    jobs: int = 1,
    timeout: float = runner.DEFAULT_TIMEOUT,
    progress: bool = True,
    journal: Journal | None = None,
) -> list[RunRecord]:
    """Every scenario ``repetitions`` times (or as many times as the mapping says for its id),
    returned ordered by scenario then repetition; each finished run is appended to
    ``journal`` as it finishes (by its lane)."""
    runs = (
        repetitions if isinstance(repetitions, Mapping) else {s.id: repetitions for s in scenarios}
    )
    todo = schedule(scenarios, runs)
    kinds = {s.storage for s in scenarios}
    lanes: list[Child] = []
    records: list[RunRecord] = []
    with ExitStack() as shared:
        storages = shared_databases(kinds, shared)
        templates = sqlite_template(kinds, shared)
        taken = CTX.Value("i", 0)
        try:
            for _ in range(max(1, min(jobs, len(todo)))):
                # The first lane leads a new group; the others join it.
                group = (lanes[0].process.pid or 0) if lanes else 0
                lanes.append(
                    Child(
                        _run_lane,
                        todo,
                        taken,
                        storages,
                        templates,
                        timeout,
                        progress,
                        journal,
                        name="lane",
                        group=group,
                    )
                )
            deaths = []
            for lane in lanes:
                # Each run is bounded by ``timeout``, and one lane may end up taking every job.
                deadline = time.monotonic() + timeout * (len(todo) + 1)
                try:
                    records += lane.result(deadline)
                except ChildFailed as exc:
                    deaths.append(_cause(exc))
            if deaths:
                # A dead lane's finished runs are in the journal; the run it was in the middle
                # of (and any that no lane took) is recorded as not measured.
                finished = {(r.scenario, r.repetition) for r in records}
                records += [
                    r
                    for r in (journal.runs() if journal is not None else [])
                    if (r.scenario, r.repetition) not in finished
                ]
                lost = _lost(todo, {(r.scenario, r.repetition) for r in records}, deaths)
                for record in lost:
                    if journal is not None:
                        journal.append(record)
                records += lost
        except BaseException:
            if lanes:
                _stop(lanes, kinds)
            raise
        if any(lane.process.exitcode != 0 for lane in lanes):
            _stop(lanes, kinds)  # what a dead lane could not remove
    order = {s.id: i for i, s in enumerate(scenarios)}
    return sorted(records, key=lambda r: (order.get(r.scenario, len(order)), r.repetition))


def shared_databases(kinds: set[str], stack: ExitStack) -> dict[str, StorageSpec]:
    """One database per server kind for the whole invocation, each run a fresh study in it
    (Optuna keeps studies apart, as users who share one database across studies rely on):
    creating a database and Optuna's tables for every run cost more than the runs' own
    statements on a small grid. Dropped when the invocation ends; named after this process,
    so the sweep after an interrupt and ``clean`` find it. A server that refuses the CREATE
    gets no shared database: its runs then try their own and record why they could not."""
    shared = {}
    for kind in sorted(kinds & DATABASE_SERVERS):
        database = services.isolated(kind, "", owner=os.getpid())
        try:
            spec = database.__enter__()
        except StorageError as exc:
            print(f"no shared {kind} database ({exc}); each run tries its own", file=sys.stderr)
            continue
        stack.callback(_drop, kind, database)
        try:
            # Optuna's tables, made once by this Optuna: every run's study and workers then
            # open the database as a distributed user's workers can (`skip_table_creation`).
            call(workers.create_schema, spec, timeout=SCHEMA_TIMEOUT)
        except ChildFailed as exc:
            print(
                f"no Optuna tables in the shared {kind} database ({_cause(exc)}); each run "
                "makes them itself",
                file=sys.stderr,
            )
            shared[kind] = spec
            continue
        shared[kind] = dataclasses.replace(spec, schema_ready=True)
    return shared


def sqlite_template(kinds: set[str], stack: ExitStack) -> dict[str, str]:
    """An empty SQLite file with Optuna's tables, made once per invocation and copied by each
    SQLite run (making the tables and stamping their version was a large share of a run's
    SQLite time: ``git show fb4dd90:results/sitting.json`` has the before and after). Removed
    when the invocation ends; in this process's scratch folder, so the sweep after an
    interrupt and ``clean`` find it. If it cannot be made, each run makes its own file as
    before and records why if that fails too."""
    if "sqlite" not in kinds:
        return {}
    # Signals wait until the folder's removal is registered: a Ctrl-C in between left an
    # empty template folder behind.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        folder = tempfile.mkdtemp(
            prefix=f"{services.scratch_prefix(os.getpid())}template-", dir=services.scratch_dir()
        )
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
    except OSError:
        return {}
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    spec = embedded("sqlite", folder)
    try:
        call(workers.create_schema, spec, timeout=SCHEMA_TIMEOUT)
    except ChildFailed as exc:
        print(f"no SQLite template ({_cause(exc)}); each run makes its own", file=sys.stderr)
        return {}
    return {"sqlite": sqlite_file(spec)}


def _drop(kind: str, database: AbstractContextManager[StorageSpec]) -> None:
    """Drop a shared database; the runs in it are measured and kept whatever happens here."""
    try:
        database.__exit__(None, None, None)
    except (ChildFailed, StorageError) as exc:
        print(
            f"could not drop the shared {kind} database ({str(exc).strip().splitlines()[-1]}); "
            "`python -m repro clean` lists it",
            file=sys.stderr,
        )


def _cause(exc: ChildFailed) -> str:
    return str(exc).strip().splitlines()[-1]


def _progress(n: int, total: int, record: RunRecord, began: float) -> None:
    status = "ERROR" if record.error else f"missing={record.missing} dup={record.duplicates}"
    print(
        f"  [{n}/{total}] {record.scenario} r{record.repetition}: {status} "
        f"({time.monotonic() - began:.0f}s)",
        file=sys.stderr,
    )
