"""Runs many (scenario, repetition) pairs, optionally in parallel lanes, and gathers records.

A lane is a forked process that runs its share of the runs one after another; each run still
forks its own workers. Lanes never share a storage, so they cannot change what GridSampler
decides; they only compete for CPU, which the results record as ``jobs``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from repro import runner
from repro.fork import Child, ChildFailed
from repro.results import RunRecord
from repro.scenarios import Scenario

Job = tuple[Scenario, int]


def _run_lane(jobs: Sequence[Job], timeout: float, progress: bool) -> list[dict[str, Any]]:
    began = time.monotonic()
    records = []
    for n, (scenario, rep) in enumerate(jobs, 1):
        records.append(runner.run(scenario, rep, timeout=timeout))
        if progress:
            _progress(n, len(jobs), records[-1], began)
    return [r.to_json() for r in records]


def _lost_lane(jobs: Sequence[Job], message: str) -> list[RunRecord]:
    """Records for runs whose lane died: the cause is kept, nothing is invented."""
    return [runner.record(s, rep, [], [], [f"run not measured: {message}"]) for s, rep in jobs]


def run_all(
    scenarios: Sequence[Scenario],
    repetitions: int,
    *,
    jobs: int = 1,
    timeout: float = runner.DEFAULT_TIMEOUT,
    progress: bool = True,
) -> list[RunRecord]:
    """Every scenario ``repetitions`` times, ordered by scenario then repetition."""
    todo: list[Job] = [(s, rep) for rep in range(repetitions) for s in scenarios]
    lanes = [todo[i::jobs] for i in range(max(1, min(jobs, len(todo))))]
    records: list[RunRecord] = []
    if len(lanes) == 1:
        records = [RunRecord.from_json(r) for r in _run_lane(todo, timeout, progress)]
    else:
        children = [Child(_run_lane, lane, timeout, progress, name="lane") for lane in lanes]
        for lane, child in zip(lanes, children):
            deadline = time.monotonic() + timeout * (len(lane) + 1)
            try:
                records += [RunRecord.from_json(r) for r in child.result(deadline)]
            except ChildFailed as exc:
                records += _lost_lane(lane, str(exc).strip().splitlines()[-1])
    order = {s.id: i for i, s in enumerate(scenarios)}
    return sorted(records, key=lambda r: (order.get(r.scenario, len(order)), r.repetition))


def _progress(n: int, total: int, record: RunRecord, began: float) -> None:
    status = "ERROR" if record.error else f"missing={record.missing} dup={record.duplicates}"
    print(
        f"  [{n}/{total}] {record.scenario} r{record.repetition}: {status} "
        f"({time.monotonic() - began:.0f}s)",
        file=sys.stderr,
    )
