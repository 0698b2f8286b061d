"""Times the harness's default scenario and the plain script on one storage, interleaved.

Both sides fork their workers from this process, which has imported Optuna and paid its lazy
imports once (``_compat.warm_up``), as the harness always does: the harness's workers are
forked, never fresh interpreters, so a plain side that started four interpreters would time
Python's start-up and ``import optuna`` (about a second each), not the harness. The plain run
itself is forked once more so that its read-back connection dies with it; its time is taken
inside that child, from storage creation to cleanup, so the extra fork counts for neither
side.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from repro import runner
from repro.bench import plain
from repro.bench import scenario as bench_scenario
from repro.bench.records import Run, StorageBench
from repro.fork import Child, ChildFailed
from repro.scenarios import Scenario

METHOD = (
    "per storage: harness and plain runs alternating (harness first); "
    "both fork their workers from one parent that has imported Optuna; harness = "
    "repro.runner.run timed around the call, plain = repro/bench/plain.py timed inside its "
    "own forked process; medians over finished runs; ratio = harness median / plain median"
)


def harness_run(scenario: Scenario, repetition: int, timeout: float) -> Run:
    began = time.perf_counter()
    record = runner.run(scenario, repetition, timeout=timeout)
    seconds = round(time.perf_counter() - began, 4)
    return Run(
        seconds=seconds,
        startup_s=[_round(w["startup_s"]) for w in record.worker_results],
        optimize_s=[round(w["elapsed_s"], 4) for w in record.worker_results],
        complete=record.complete,
        error=record.error,
    )


def _round(seconds: float | None) -> float | None:
    """A crashed worker has no start-up time."""
    return None if seconds is None else round(seconds, 4)


def plain_run(scenario: Scenario, timeout: float) -> Run:
    began = time.perf_counter()
    try:
        child = Child(plain.run, scenario, timeout, name="plain script")
        # Its own deadline inside is `timeout`; the margin covers its cleanup.
        run: Run = child.result(time.monotonic() + timeout + runner.BARRIER_TIMEOUT)
        return run
    except ChildFailed as exc:
        return Run(round(time.perf_counter() - began, 4), error=str(exc))


def bench_storage(
    storage: str,
    workers: int,
    repetitions: int,
    timeout: float,
    progress: Callable[[str], None] | None = None,
) -> StorageBench:
    """``repetitions`` harness runs and as many plain runs of ``bench.scenario(storage,
    workers)``, alternating, so that load from elsewhere on the machine falls on both sides
    alike. No untimed warm-up run: a one-off cost of the first run (a server's first
    database) is one slow value, which the median of three or more leaves out."""
    scenario = bench_scenario(storage, workers)
    harness: list[Run] = []
    plains: list[Run] = []
    for repetition in range(repetitions):
        harness.append(harness_run(scenario, repetition, timeout))
        plains.append(plain_run(scenario, timeout))
        if progress is not None:
            progress(_line(scenario, "harness", repetition, harness[-1]))
            progress(_line(scenario, "plain", repetition, plains[-1]))
    return StorageBench(storage, scenario.id, harness=harness, plain=plains, workers=workers)


def _line(scenario: Scenario, side: str, repetition: int, run: Run) -> str:
    where = f"  {scenario.storage} w{scenario.workers} {side} r{repetition}"
    if run.error:
        return f"{where}: ERROR {run.error.strip().splitlines()[-1]}"
    return f"{where}: {run.seconds:.3f} s, {run.complete} complete"
