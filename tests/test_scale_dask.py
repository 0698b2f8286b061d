"""Dask at scale (`python -m repro.scale run --launcher dask`): Optuna's Dask example pattern on
DaskStorage, a Dask worker process SIGKILLed mid-run, and SIGINT / SIGTERM to the run. Real
processes and real signals, loopback only; they need `distributed` (the scale extra)."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from repro import _compat, expectations
from repro.jsonfile import load_json
from repro.results import RunRecord
from repro.scale.cli import SCHEMA, results_file
from repro.scale.proxy import listening
from tests.helpers import ROOT, run_cli
from tests.procs import free_port, group_members, wait_empty
from tests.test_scale import every_phase_holds

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("distributed") is None,
        reason="needs distributed: the scale extra, installed in the latest session",
    ),
    pytest.mark.xdist_group("processes"),
]

SCHEDULER_LINE = re.compile(r"dask scheduler tcp://127\.0\.0\.1:(\d+), worker pids ([\d ]+)")
COMMAND = [sys.executable, "-m", "repro.scale", "run", "--launcher", "dask", "-w", "2"]


@contextmanager
def scale_run(*args: str) -> Iterator[subprocess.Popen[str]]:
    """The run in a session of its own (its group is then every process it started); killed
    with its group if the test fails first."""
    with subprocess.Popen(
        [*COMMAND, *args],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as child:
        try:
            yield child
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)


def scheduler(child: subprocess.Popen[str]) -> tuple[int, list[int]]:
    """The scheduler's port and the worker pids, from the line the run prints first."""
    assert child.stderr is not None
    for line in child.stderr:
        if match := SCHEDULER_LINE.search(line):
            return int(match[1]), [int(p) for p in match[2].split()]
    raise AssertionError("the run ended before naming its scheduler")


def running_task(pids: list[int], timeout: float = 60) -> int:
    """The first worker pid whose process has the run's SQLite file open: its task runs.
    Polling /proc, bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in pids:
            try:
                targets = [os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()]
            except OSError:
                continue
            if any(t.endswith("study.db") for t in targets):
                return pid
        time.sleep(0.01)  # polling /proc for a task's open file, bounded above
    raise AssertionError(f"no task opened the study within {timeout} s")


def read_runs(out: Path, storage: str) -> list[RunRecord]:
    data = load_json(results_file(out, storage, "grid", _compat.OPTUNA_VERSION), schema=SCHEMA)
    return [RunRecord.from_json(r) for r in data["runs"]]


def test_pickled_study_on_dask_storage_in_memory(tmp_path: Path) -> None:
    """Optuna's Dask example: one study on DaskStorage (in the scheduler's memory) and one
    sampler made in the run, study.optimize submitted per worker. The run agrees with its
    DASK_TABLE row, every barrier phase holds a trial of each worker, each worker's trials
    come from its own process, all with the one grid order pickled into both; afterwards
    nothing of the run is left and the scheduler's port is closed."""
    with scale_run(
        "--dask-pattern", "pickled", "--dask-storage", "memory", "--out", str(tmp_path)
    ) as child:
        port, _ = scheduler(child)
        stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 0, stderr
    assert wait_empty(child.pid) == []
    assert not listening(port)
    (run,) = read_runs(tmp_path, "dask-memory")
    assert expectations.dask_violations(run, _compat.OPTUNA_VERSION) == [], stdout
    assert every_phase_holds(run, {0, 1})
    pids = {r["pid"] for r in run.worker_results}
    assert len(pids) == 2
    assert -1 not in pids
    assert run.worker_orders_distinct == 1


def test_killed_worker_is_recorded_and_sigterm_leaves_no_cluster(tmp_path: Path) -> None:
    """One invocation of many runs on the run's own cluster. A Dask worker process SIGKILLed
    while its task runs in the first run: that run ends at once (the other worker is released
    from the barrier, not held to its 30 s timeout) and is recorded with the lost worker's
    KilledWorker error. Then SIGTERM while a task of the next run runs: exit 143 within
    10 s, the first run kept in the results file (a run is printed once it is written), no
    process of the run left (scheduler, nanny or worker) and the scheduler's port closed.
    SIGINT takes the same handler (`repro.fork.raise_on_signals`), which test_scale.py
    checks with the proxy."""
    began = time.monotonic()
    with scale_run("--direct", "-r", "50", "--out", str(tmp_path)) as child:
        port, pids = scheduler(child)
        os.kill(running_task(pids), signal.SIGKILL)
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first.startswith("concurrent-none-sqlite-w2-g24 r0:"), first
        assert time.monotonic() - began < 60
        # The nanny has started a new worker process in place of the killed one: SIGTERM
        # once a task of the next run runs, the cluster whole again.
        running_task(group_members(child.pid))
        child.send_signal(signal.SIGTERM)
        assert child.wait(10) == 128 + signal.SIGTERM
    assert wait_empty(child.pid) == []
    assert not listening(port)
    runs = read_runs(tmp_path, "sqlite")
    assert runs[0].error is not None
    assert "KilledWorker" in runs[0].error, runs[0].error


def test_dask_storage_without_optuna_integration_or_per_worker_seeds_is_one_line() -> None:
    """optuna-integration made unimportable: from Optuna 3.6.0, where DaskStorage lives
    there, one line naming the package, exit 2, within 10 s (before, Optuna's own class needs
    nothing more and the run goes on). One sampler for every task has one seed: a per-worker
    seed policy with the pickled pattern is one line, exit 2, before any cluster starts."""
    pickled = ["run", "--launcher", "dask", "--dask-pattern", "pickled", "--direct", "-w", "2"]
    began = time.monotonic()
    blocked = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['optuna_integration'] = None; "
            "from repro.scale.cli import main; "
            f"sys.exit(main({[*pickled, '--dask-storage', 'memory']!r}))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if not _compat.DASK_STORAGE_IN_OPTUNA:
        assert time.monotonic() - began < 10
        assert blocked.returncode == 2, blocked.stderr
        (line,) = blocked.stderr.strip().splitlines()
        assert "--dask-storage needs optuna-integration" in line
    else:
        assert blocked.returncode == 0, blocked.stderr
    seeds = run_cli(*pickled, "--seed-policy", "per-worker", module="repro.scale")
    assert seeds.returncode == 2
    (line,) = seeds.stderr.strip().splitlines()
    assert "--seed-policy per-worker does not apply" in line


@contextmanager
def cluster_process(*command: str) -> Iterator[subprocess.Popen[bytes]]:
    """A `dask scheduler` or `dask worker` of the test's own, in its own session; killed with
    everything it started afterwards."""
    with subprocess.Popen(
        [sys.executable, "-m", *command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    ) as process:
        try:
            yield process
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_lost_scheduler_is_a_recorded_error(tmp_path: Path) -> None:
    """An existing cluster (`--scheduler`: a scheduler and a two-thread worker of the test's
    own, on loopback) whose scheduler is SIGKILLed while a task runs: the run records the
    error, keeps what it measured, says so in one line and exits 1, without hanging."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler_cli = ("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port))
    worker_cli = ("distributed.cli.dask_worker", address, "--host", "127.0.0.1", "--nthreads", "2")
    with (
        cluster_process(*scheduler_cli, "--no-dashboard") as lost,
        cluster_process(*worker_cli, "--no-dashboard"),
    ):
        from distributed import Client

        # The cluster is ready once its worker has joined (bounded waits).
        with Client(address, timeout=30) as ready:
            ready.wait_for_workers(1, timeout=30)
        with scale_run(
            "--scheduler", address, "--direct", "-r", "50", "--out", str(tmp_path)
        ) as child:
            _, pids = scheduler(child)
            running_task(pids)
            lost.send_signal(signal.SIGKILL)
            _, stderr = child.communicate(timeout=60)
    assert child.returncode == 1, stderr
    assert "lost the Dask scheduler after run" in stderr
    runs = read_runs(tmp_path, "sqlite")
    assert runs[-1].error is not None
    assert len(runs) < 50
