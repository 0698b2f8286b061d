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

import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from repro import runner, services
from repro.fork import Child, ChildFailed, check_interrupted, interruptible
from repro.results import Journal, RunRecord
from repro.scenarios import Scenario

Job = tuple[Scenario, int]
# Seconds the lanes get to tear their storages down after SIGTERM, before SIGKILL: the whole
# stop stays within 5 s.
STOP_GRACE = 3.5


def _run_lane(
    jobs: Sequence[Job], timeout: float, progress: bool, journal: Journal | None
) -> list[dict[str, Any]]:
    began = time.monotonic()
    records = []
    with interruptible():
        for n, (scenario, rep) in enumerate(jobs, 1):
            record = runner.run(scenario, rep, timeout=timeout)
            check_interrupted()  # a run cut short by the stop is not a finished run
            if journal is not None:
                journal.append(record)
            records.append(record)
            if progress:
                _progress(n, len(jobs), record, began)
    return [r.to_json() for r in records]


def _lost_lane(jobs: Sequence[Job], done: set[tuple[str, int]], message: str) -> list[RunRecord]:
    """Records for the runs a dead lane had not finished: the cause is kept, nothing is
    invented; the runs it finished are in the journal already."""
    return [
        runner.record(s, rep, [], [], [f"run not measured: {message}"])
        for s, rep in jobs
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
    repetitions: int,
    *,
    jobs: int = 1,
    timeout: float = runner.DEFAULT_TIMEOUT,
    progress: bool = True,
    journal: Journal | None = None,
) -> list[RunRecord]:
    """Every scenario ``repetitions`` times, ordered by scenario then repetition; each
    finished run is appended to ``journal`` as it finishes (by its lane)."""
    todo: list[Job] = [(s, rep) for rep in range(repetitions) for s in scenarios]
    shares = [todo[i::jobs] for i in range(max(1, min(jobs, len(todo))))]
    lanes: list[Child] = []
    records: list[RunRecord] = []
    try:
        for share in shares:
            # The first lane leads a new group; the others join it.
            group = (lanes[0].process.pid or 0) if lanes else 0
            lanes.append(
                Child(_run_lane, share, timeout, progress, journal, name="lane", group=group)
            )
        for share, lane in zip(shares, lanes):
            deadline = time.monotonic() + timeout * (len(share) + 1)
            try:
                records += [RunRecord.from_json(r) for r in lane.result(deadline)]
            except ChildFailed as exc:
                done = journal.runs() if journal is not None else []
                mine = {(s.id, rep) for s, rep in share}
                records += [r for r in done if (r.scenario, r.repetition) in mine]
                lost = _lost_lane(share, {(r.scenario, r.repetition) for r in done}, _cause(exc))
                for record in lost:
                    if journal is not None:
                        journal.append(record)
                records += lost
    except BaseException:
        if lanes:
            _stop(lanes, {s.storage for s in scenarios})
        raise
    if any(lane.process.exitcode != 0 for lane in lanes):
        _stop(lanes, {s.storage for s in scenarios})  # what a dead lane could not remove
    order = {s.id: i for i, s in enumerate(scenarios)}
    return sorted(records, key=lambda r: (order.get(r.scenario, len(order)), r.repetition))


def _cause(exc: ChildFailed) -> str:
    return str(exc).strip().splitlines()[-1]


def _progress(n: int, total: int, record: RunRecord, began: float) -> None:
    status = "ERROR" if record.error else f"missing={record.missing} dup={record.duplicates}"
    print(
        f"  [{n}/{total}] {record.scenario} r{record.repetition}: {status} "
        f"({time.monotonic() - began:.0f}s)",
        file=sys.stderr,
    )
