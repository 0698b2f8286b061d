"""Worker processes: results, errors, crashes and hangs all come back as data; every worker
builds its own sampler after the fork."""

from __future__ import annotations

import dataclasses
import gc
import os
import signal
import time
from pathlib import Path

import optuna
import pytest

from repro import runner, workers
from repro.fork import CTX, Child, ChildFailed, call
from repro.metrics import TrialRecord
from repro.scenarios import Scenario
from repro.storages import embedded, open_storage
from repro.workers import WorkerResult

pytestmark = pytest.mark.xdist_group("processes")


def double(x: int) -> int:
    return 2 * x


def explode() -> None:
    raise RuntimeError("boom in the child")


def die() -> None:
    os._exit(3)


def hang(event: object) -> None:
    event.wait(60)  # type: ignore[attr-defined]


def test_child_returns_its_value() -> None:
    assert call(double, 21, timeout=30) == 42


def test_child_exception_comes_back_as_traceback() -> None:
    with pytest.raises(ChildFailed, match=r"(?s)Traceback.*RuntimeError: boom in the child"):
        call(explode, timeout=30)


def test_child_crash_is_reported_with_exit_code() -> None:
    with pytest.raises(ChildFailed, match="died with exit code 3"):
        call(die, timeout=30)


def test_hung_child_is_killed_at_the_deadline() -> None:
    event = CTX.Event()
    child = Child(hang, event)
    with pytest.raises(ChildFailed, match="timed out"):
        child.result(time.monotonic() + 0.5)
    assert not child.process.is_alive()


@pytest.mark.parametrize("mode", ["sequential", "concurrent", "threads"])
def test_each_worker_builds_its_own_sampler_after_the_fork(mode: str) -> None:
    """A sampler built once and handed to the workers would hide the behaviour under test:
    then every worker would report the parent's pid, or one pid for all. On SQLite: concurrent
    workers on a journal file can crash inside Optuna 3.0-3.5 (optuna#5138, a known fault that
    a run records), which would fail this test for a reason it is not about."""
    scenario = Scenario(mode=mode, seed_policy="none", storage="sqlite")  # type: ignore[arg-type]
    record = runner.run(scenario, 0)
    assert record.error is None, record.error
    pids = [w["pid"] for w in record.worker_results]
    assert [w["sampler_pid"] for w in record.worker_results] == pids
    assert os.getpid() not in pids
    assert len(set(pids)) == len(pids) == (1 if mode == "threads" else scenario.workers)
    samplers = [o for o in gc.get_objects() if isinstance(o, optuna.samplers.GridSampler)]
    assert samplers == [], "the test process itself built a GridSampler"


def _walk(value: object, where: str) -> None:
    """Fail on anything but our dataclasses and builtins inside ``value``."""
    module = type(value).__module__
    assert module.startswith(("repro.", "builtins")), f"{type(value)} in {where}"
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            _walk(getattr(value, f.name), where)
    elif isinstance(value, (tuple, list)):
        for item in value:
            _walk(item, where)
    elif isinstance(value, dict):
        for item in value.values():
            _walk(item, where)


def test_plans_carry_plain_data_only() -> None:
    """Nothing of Optuna's crosses the fork: a plan is made of our dataclasses and builtins."""

    scenario = Scenario(mode="concurrent", seed_policy="none", storage="sqlite")
    for plan in runner.worker_plans(scenario, embedded("sqlite", "/tmp"), "s", 30.0):
        _walk(plan, "a worker plan")


def test_results_and_trials_cross_the_fork_as_records(tmp_path: Path) -> None:
    """A worker returns a WorkerResult and the study reads back as TrialRecords through the
    pipe, with nothing of Optuna's in them; only the run record holds their JSON form. The
    first of four sequential workers alone: its six trials are six points (forced, one
    sampler in one thread never repeats a point)."""
    scenario = Scenario(mode="sequential", seed_policy="none", storage="journal")
    spec = embedded("journal", str(tmp_path))
    call(workers.create_study, spec, "s", scenario, timeout=60)
    plan = runner.worker_plans(scenario, spec, "s", 30.0)[0]
    result = Child(workers.run_worker, plan, None, time.perf_counter()).result(
        time.monotonic() + 60
    )
    trials = call(workers.read_trials, spec, "s", timeout=60)
    assert isinstance(result, WorkerResult)
    assert result.error is None
    assert all(isinstance(t, TrialRecord) for t in trials)
    assert len(trials) == scenario.trials_each
    for value in (result, *trials):
        _walk(value, "a worker's result")
    record = runner.record(scenario, 0, trials, [result], [])
    assert record.worker_results == [result.to_json()]
    assert record.trial_log == [t.to_json() for t in trials]
    assert (record.complete, record.distinct) == (scenario.trials_each, scenario.trials_each)


def record_then_die(attribution: workers.Attribution) -> None:
    attribution.record(3, 2, 1)
    attribution.record(5, 0, None)
    os.kill(os.getpid(), signal.SIGKILL)


def test_attribution_outlives_a_killed_worker() -> None:
    """What a worker recorded is in shared memory, so a worker killed afterwards keeps it; a
    trial that a worker tagged in the storage keeps its tag, and one nobody recorded stays
    unattributed."""
    attribution = workers.Attribution(CTX, 8)
    with pytest.raises(ChildFailed, match="from SIGKILL"):
        call(record_then_die, attribution, timeout=30)
    trials = [
        TrialRecord(number, "COMPLETE", {"x": number}, number, worker)
        for number, worker in [(3, None), (4, None), (5, None), (6, 1)]
    ]
    assert [(t.worker, t.phase) for t in attribution.apply(trials)] == [
        (2, 1),
        (None, None),
        (0, None),
        (1, None),
    ]


def test_forked_workers_attribute_trials_without_a_storage_write() -> None:
    """Workers the run forks write no tag per trial, a write a user's script does not make;
    every trial still names its worker and its barrier round in the run record."""
    scenario = Scenario(mode="concurrent", seed_policy="none", storage="journal")
    with runner._fresh_storage("journal", "attribution") as spec:
        record = runner.run(scenario, 0, storage=spec)
        assert record.error is None, record.error
        storage = open_storage(dataclasses.replace(spec, schema_ready=True))
        study = optuna.load_study(study_name=record.study_name, storage=storage)
        assert [t.user_attrs for t in study.get_trials()] == [{}] * scenario.grid_size
    assert sorted((t["phase"], t["worker"]) for t in record.trial_log) == [
        (phase, worker)
        for phase in range(scenario.trials_each)
        for worker in range(scenario.workers)
    ]
