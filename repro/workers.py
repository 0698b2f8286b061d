"""Worker processes. Each worker is a forked child of a parent that has already imported Optuna,
so it pays neither a fresh interpreter nor a fresh ``import optuna``; it builds its own storage
connection and its own GridSampler after the fork, exactly as a separate script would.

Workers return plain data through a pipe (``repro.fork``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Union

import optuna

from repro import _compat
from repro.metrics import TrialRecord, point_key
from repro.scenarios import Scenario
from repro.storages import StorageSpec, open_storage
from repro.sync import Phaser, StorageBarrier

Barrier = Union[Phaser, StorageBarrier]

# One user attr per trial (each is a storage write): {"worker": index, "phase": barrier round}.
TAG_ATTR = "repro"


@dataclass(frozen=True)
class WorkerPlan:
    """Everything a worker needs, as plain data: no Optuna object crosses the fork."""

    scenario: Scenario
    storage: StorageSpec
    study_name: str
    worker_index: int
    n_trials: int
    n_jobs: int
    barrier_timeout: float
    # Concurrent workers started by hand on several hosts meet through the storage instead.
    storage_barrier: bool = False


@dataclass(frozen=True)
class WorkerResult:
    index: int
    pid: int
    sampler_pid: int | None
    seed: int | None
    order_fingerprint: str | None
    startup_s: float | None
    elapsed_s: float
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def order_fingerprint(order: list[dict[str, Any]]) -> str:
    text = json.dumps([point_key(point) for point in order])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_worker(plan: WorkerPlan, phaser: Phaser | None, spawned_at: float) -> dict[str, Any]:
    """Body of one worker process; returns a WorkerResult as a dict."""
    try:
        return _run_worker(plan, phaser, spawned_at)
    finally:
        # Also on failure, so the other workers finish their rounds without this one.
        if phaser is not None:
            phaser.deregister()


def _run_worker(plan: WorkerPlan, phaser: Barrier | None, spawned_at: float) -> dict[str, Any]:
    _compat.quiet_optuna()
    scenario = plan.scenario
    seed = scenario.seed_for(plan.worker_index)
    storage = open_storage(plan.storage)
    sampler = _compat.remedy_sampler(scenario.remedy, scenario.space_dict(), seed)
    sampler_pid = os.getpid()
    order = _compat.sampler_order(sampler)
    fingerprint = order_fingerprint(order) if order is not None else None
    study = optuna.load_study(study_name=plan.study_name, storage=storage, sampler=sampler)
    if plan.storage_barrier:
        phaser = StorageBarrier(study, plan.worker_index, scenario.workers)
    startup = time.perf_counter() - spawned_at
    space = scenario.space_dict()

    def objective(trial: optuna.Trial) -> float:
        for name, values in space.items():
            trial.suggest_categorical(name, values)
        tag = {"worker": plan.worker_index, "phase": None}
        if phaser is not None:
            # Every live worker holds a RUNNING trial here at the same moment.
            tag["phase"] = phaser.arrive_and_wait(plan.barrier_timeout)
        trial.set_user_attr(TAG_ATTR, tag)
        return 0.0

    started = time.perf_counter()
    try:
        study.optimize(
            objective,
            n_trials=plan.n_trials,
            n_jobs=plan.n_jobs,
            catch=(),
            # As in #5489: the study as a whole stops at its budget (the grid size unless a
            # remedy gives more), whatever each worker's quota.
            callbacks=[
                optuna.study.MaxTrialsCallback(
                    scenario.budget, states=_compat.counted_states(scenario.remedy)
                )
            ],
        )
    finally:
        if plan.storage_barrier and phaser is not None:
            phaser.deregister()
        _compat.dispose(storage)
    return WorkerResult(
        index=plan.worker_index,
        pid=os.getpid(),
        sampler_pid=sampler_pid,
        seed=seed,
        order_fingerprint=fingerprint,
        startup_s=startup,
        elapsed_s=time.perf_counter() - started,
        error=None,
    ).to_json()


SCENARIO_ATTR = "repro_scenario"
SPACE_ATTR = "repro_search_space"


def create_study(spec: StorageSpec, study_name: str, scenario: Scenario) -> None:
    """Create the study, or join it when another worker (on another host) already did; the
    scenario is recorded in the study so that ``collect`` needs nothing but the storage."""
    _compat.quiet_optuna()
    storage = _open_racing(spec)
    try:
        study = optuna.create_study(
            study_name=study_name, storage=storage, direction="minimize", load_if_exists=True
        )
        study.set_user_attr(SCENARIO_ATTR, scenario.id)
        study.set_user_attr(SPACE_ATTR, [[n, list(v)] for n, v in scenario.search_space])
    finally:
        _compat.dispose(storage)


def enqueue_grid(spec: StorageSpec, study_name: str, scenario: Scenario) -> None:
    """The "enqueued" remedy's one step before any worker starts: every grid point becomes a
    WAITING trial, which the workers then claim (optuna/optuna#2210)."""
    _compat.quiet_optuna()
    storage = open_storage(spec)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
        names = [name for name, _ in scenario.search_space]
        points = itertools.product(*(values for _, values in scenario.search_space))
        _compat.enqueue_points(study, [dict(zip(names, p)) for p in points])
    finally:
        _compat.dispose(storage)


def _open_racing(spec: StorageSpec, attempts: int = 5) -> optuna.storages.BaseStorage:
    """Open a storage that other workers may be initialising at the same moment: on a fresh
    PostgreSQL database, Optuna's table creation in one process fails with a unique violation
    when another creates the same type first. The loser retries and finds the tables."""
    for attempt in range(attempts):
        try:
            return open_storage(spec)
        except Exception:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def study_scenario(spec: StorageSpec, study_name: str) -> tuple[str, list[list[Any]]]:
    """The scenario id and search space a study was created for."""
    _compat.quiet_optuna()
    storage = open_storage(spec)
    try:
        attrs = optuna.load_study(study_name=study_name, storage=storage).user_attrs
        return attrs[SCENARIO_ATTR], attrs[SPACE_ATTR]
    finally:
        _compat.dispose(storage)


def read_trials(spec: StorageSpec, study_name: str) -> list[dict[str, Any]]:
    _compat.quiet_optuna()
    storage = open_storage(spec)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
        return [
            TrialRecord(
                number=t.number,
                state=t.state.name,
                params=dict(t.params),
                grid_id=t.system_attrs.get(_compat.GRID_ID_ATTR),
                worker=t.user_attrs.get(TAG_ATTR, {}).get("worker"),
                phase=t.user_attrs.get(TAG_ATTR, {}).get("phase"),
            ).to_json()
            for t in study.get_trials(deepcopy=False)
        ]
    finally:
        _compat.dispose(storage)


def delete_study(spec: StorageSpec, study_name: str) -> None:
    _compat.quiet_optuna()
    storage = open_storage(spec)
    try:
        optuna.delete_study(study_name=study_name, storage=storage)
    finally:
        _compat.dispose(storage)
