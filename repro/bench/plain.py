"""The plain script the harness is timed against: the #5489 pattern as a user writes it, with
nothing of the harness. Each worker opens the storage, creates or joins the study with its own
``GridSampler``, and runs its trials under ``MaxTrialsCallback``; the workers run one after
another; then the trials are read back and the storage is removed.

It borrows from the package only what both sides must share for the times to compare the same
work: the fresh storage of a run (a file on the same scratch directory, or a database / Redis
prefix of its own), the storage objects with the same engine options, and the fork helper that
starts a worker and carries back its result or traceback. No barrier, no tags, no grid-order
fingerprint, no metrics, no run record.

By hand: ``python -m repro.bench.plain --storage sqlite`` prints what one run took, as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import optuna

from repro import _compat, runner, services
from repro.bench import scenario as bench_scenario
from repro.bench import workers_option
from repro.bench.records import Run
from repro.cmdline import Parser, dispatch
from repro.fork import Child
from repro.scenarios import ALL_STORAGES, DEFAULT_WORKERS, SERVER_STORAGES, Scenario
from repro.storages import StorageSpec, open_storage


def _worker(
    spec: StorageSpec,
    study_name: str,
    space: dict[str, list[Any]],
    n_trials: int,
    grid_size: int,
    spawned_at: float,
) -> dict[str, float]:
    storage = open_storage(spec)
    try:
        study = optuna.create_study(
            study_name=study_name,
            storage=storage,
            sampler=optuna.samplers.GridSampler(space),
            load_if_exists=True,
        )
        startup = time.perf_counter() - spawned_at

        def objective(trial: optuna.Trial) -> float:
            for name, values in space.items():
                trial.suggest_categorical(name, values)
            return 0.0

        began = time.perf_counter()
        study.optimize(
            objective,
            n_trials=n_trials,
            callbacks=[optuna.study.MaxTrialsCallback(grid_size, states=None)],
        )
        return {"startup_s": startup, "optimize_s": time.perf_counter() - began}
    finally:
        _compat.dispose(storage)


def _complete_trials(spec: StorageSpec, study_name: str) -> int:
    storage = open_storage(spec)
    try:
        trials = optuna.load_study(study_name=study_name, storage=storage).get_trials(
            deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
        )
        return len(trials)
    finally:
        _compat.dispose(storage)


def run(scenario: Scenario, timeout: float) -> Run:
    """One plain run of a sequential scenario. A worker's failure or a
    timeout raises ``ChildFailed`` with its traceback or cause."""
    # Workers log what the harness's workers log: errors only.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    began = time.perf_counter()
    deadline = time.monotonic() + timeout
    study_name = f"plain-{uuid.uuid4().hex[:12]}"
    startup: list[float | None] = []
    optimize: list[float] = []
    with runner._fresh_storage(scenario.storage, study_name) as spec:
        for _ in range(scenario.workers):
            args = (spec, study_name, scenario.space_dict(), scenario.trials_each)
            spawned = time.perf_counter()
            child = Child(_worker, *args, scenario.grid_size, spawned, name="plain worker")
            times = child.result(deadline)
            startup.append(round(times["startup_s"], 4))
            optimize.append(round(times["optimize_s"], 4))
        complete = _complete_trials(spec, study_name)
    seconds = round(time.perf_counter() - began, 4)
    return Run(seconds, startup, optimize, complete)


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="python -m repro.bench.plain",
        description="One plain run of the #5489 pattern (sequential workers, no seed, the "
        "bench's grid for the worker count) on a fresh storage; prints its times as JSON.",
    )
    parser.add_argument("--storage", choices=ALL_STORAGES, default="sqlite")
    parser.add_argument(
        "-w",
        "--workers",
        type=workers_option,
        default=DEFAULT_WORKERS,
        metavar="N",
        help=f"workers, as `python -m repro.bench -w` runs them (default: {DEFAULT_WORKERS})",
    )
    parser.set_defaults(command="run")

    def handle(args: argparse.Namespace) -> int:
        if args.storage in SERVER_STORAGES:
            services.check_reachable(StorageSpec(args.storage, services.server_url(args.storage)))
        _compat.warm_up()
        scenario = bench_scenario(args.storage, args.workers)
        print(json.dumps(run(scenario, runner.DEFAULT_TIMEOUT).to_json()))
        return 0

    return dispatch(parser.prog, {"run": handle}, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
