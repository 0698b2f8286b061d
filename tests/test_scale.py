"""Optuna's gRPC storage proxy (`python -m repro.scale`): the one-line errors for a release
without the proxy or without the scale extra, and a proxy server that the run starts on a free
loopback port and removes afterwards, interrupts included. Real processes, loopback only."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repro import _compat, expectations
from repro.jsonfile import load_json
from repro.results import RunRecord
from repro.scale.cli import SCHEMA, results_file
from repro.scale.extras import EXTRA
from repro.scale.proxy import listening
from repro.scenarios import Scenario
from tests.helpers import ROOT, require_service, run_cli, run_record
from tests.procs import wait_empty

# Per test, not per module: a second group mark would join the names into a group of its own.
PROCESSES = pytest.mark.xdist_group("processes")

PROXY_LINE = re.compile(r"proxy pid (\d+) on grpc://127\.0\.0\.1:(\d+)")
NOT_APPLICABLE = f"not applicable on Optuna {_compat.OPTUNA_VERSION} (from 4.2.0)"


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@PROCESSES
def test_missing_grpcio_names_the_extra_or_the_release_bound(tmp_path: Path) -> None:
    """grpcio made unimportable (a None entry in sys.modules is how Python blocks an import):
    one line naming the extra, exit 2, within 10 s, nothing written. A release without the
    proxy says so first, since no extra brings it, and records it as not applicable."""
    began = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['grpc'] = None; from repro.scale.cli import main; "
            f"sys.exit(main(['run', '-w', '2', '--out', {str(tmp_path)!r}]))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert time.monotonic() - began < 10
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    recorded = results_file(tmp_path, "grpc-sqlite", "grid", _compat.OPTUNA_VERSION)
    if _compat.GRPC_PROXY:
        assert "needs grpcio" in lines[0]
        assert EXTRA in lines[0]
        assert not recorded.exists()
    else:
        assert NOT_APPLICABLE in lines[0]
        data = load_json(recorded, schema=SCHEMA)
        assert NOT_APPLICABLE in data["not_applicable"]
        assert data["runs"] == []
        summary = run_cli("summary", str(tmp_path), module="repro.scale")
        assert summary.stdout == f"{recorded.stem}: {data['not_applicable']}\n"


def read_runs(out: Path, storage: str, remedy: str = "grid") -> list[RunRecord]:
    data = load_json(results_file(out, storage, remedy, _compat.OPTUNA_VERSION), schema=SCHEMA)
    return [RunRecord.from_json(r) for r in data["runs"]]


def check_proxy_run(backend: str, out: Path) -> None:
    """Two concurrent workers through a proxy in front of ``backend``: each run agrees with
    the version's GridSampler row (the proxy row says the cache changes nothing); afterwards
    the server process is gone and nothing listens on its port."""
    result = run_cli(
        "run", "--backend", backend, "-w", "2", "--out", str(out), module="repro.scale", timeout=120
    )
    assert result.returncode == 0, result.stderr
    match = PROXY_LINE.search(result.stderr)
    assert match, result.stderr
    assert gone(int(match[1]))
    assert not listening(int(match[2]))
    runs = read_runs(out, f"grpc-{backend}")
    assert [r.storage for r in runs] == [f"grpc-{backend}"]
    assert expectations.proxy_expected(_compat.OPTUNA_VERSION, runs[0].storage) is not None
    assert [v for r in runs for v in expectations.proxy_violations(r, _compat.OPTUNA_VERSION)] == []
    summary = run_cli("summary", str(out), module="repro.scale")
    lost = sum(1 for r in runs if r.missing)
    assert f"{lost} of 1 runs lost points" in summary.stdout, summary.stdout


def every_phase_holds(run: RunRecord, workers: set[int]) -> bool:
    """Whether the run had barrier phases and each held a trial of every worker."""
    phases: dict[int, set[int]] = {}
    for trial in run.trial_log:
        phases.setdefault(trial["phase"], set()).add(trial["worker"])
    return bool(phases) and all(held == workers for held in phases.values())


NEEDS_PROXY = pytest.mark.skipif(
    not _compat.GRPC_PROXY, reason=f"grpc storage: {NOT_APPLICABLE} (see the first test)"
)


@NEEDS_PROXY
@PROCESSES
def test_dask_tasks_through_the_proxy_meet_and_leave_nothing_running(tmp_path: Path) -> None:
    """Two workers as Dask tasks on the run's own LocalCluster, through a proxy in front of
    SQLite: every barrier phase holds a trial of each worker (the storage barrier crosses Dask's
    worker processes), the run agrees with its row, and afterwards no process of the run's
    group is left (cluster and proxy closed) and the proxy's port is closed."""
    command = [sys.executable, "-m", "repro.scale", "run", "--launcher", "dask", "-w", "2"]
    with subprocess.Popen(
        [*command, "--out", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as child:
        try:
            stdout, stderr = child.communicate(timeout=120)
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
    assert child.returncode == 0, stderr
    assert wait_empty(child.pid) == []
    match = PROXY_LINE.search(stderr)
    assert match, stderr
    assert not listening(int(match[2]))
    (run,) = read_runs(tmp_path, "grpc-sqlite")
    assert expectations.proxy_violations(run, _compat.OPTUNA_VERSION) == [], stdout
    assert every_phase_holds(run, {0, 1})


@PROCESSES
@pytest.mark.parametrize("port", ["closed", "silent"])
def test_unreachable_scheduler_or_missing_distributed_is_one_line(port: str) -> None:
    """A scheduler address on a closed loopback port, or on one that accepts connections and
    never speaks: one line naming it, exit 2, within 10 s; where distributed is not installed
    (the 3.x sessions), the line names the extra instead."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        if port == "silent":
            silent.listen()  # the kernel completes the handshake; nothing ever answers
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        began = time.monotonic()
        result = run_cli(
            "run", "--direct", "--launcher", "dask", "--scheduler", address, module="repro.scale"
        )
        took = time.monotonic() - began
    assert took < 10, result.stderr
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    if importlib.util.find_spec("distributed") is None:
        assert f"needs distributed, which is not installed: {EXTRA}" in lines[0]
    elif port == "closed":
        assert f"scheduler {address} refused the connection" in lines[0]
    else:
        assert f"scheduler {address} did not answer within 5 s" in lines[0]


@NEEDS_PROXY
@pytest.mark.xdist_group("servers")
def test_proxy_in_front_of_postgresql(tmp_path: Path) -> None:
    require_service("postgresql")
    check_proxy_run("postgresql", tmp_path)


@NEEDS_PROXY
@PROCESSES
def test_brute_force_through_the_proxy_crashes_only_on_map_order(tmp_path: Path) -> None:
    """One worker, BruteForceSampler: on SQLite itself every point once (forced); through the
    proxy either that too or the worker crashed with the proxy row's signature, nothing else.
    Whether it crashes depends on the process's protobuf map order: the rate is measured
    (docs/scale.md), not asserted here."""
    shape = ("run", "-w", "1", "--mode", "sequential", "--remedy", "bruteforce")
    for extra in ((), ("--direct",)):
        result = run_cli(*shape, *extra, "--out", str(tmp_path), module="repro.scale")
        assert result.returncode == 0, result.stderr
    (proxied,) = read_runs(tmp_path, "grpc-sqlite", "bruteforce")
    assert expectations.proxy_violations(proxied, _compat.OPTUNA_VERSION) == []
    if proxied.worker_crashes:
        assert proxied.missing > 0
    (direct,) = read_runs(tmp_path, "sqlite", "bruteforce")
    assert direct.worker_crashes == []
    assert (direct.missing, direct.duplicates) == (0, 0)


@NEEDS_PROXY
@PROCESSES
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_stops_the_proxy(signum: signal.Signals) -> None:
    """A signal while the workers run: the run exits 128 + signum within 10 s and its proxy
    server is gone, its port closed."""
    with subprocess.Popen(
        [sys.executable, "-m", "repro.scale", "run", "-w", "2", "-r", "50"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stderr is not None
            line = child.stderr.readline()
            match = PROXY_LINE.search(line)
            assert match, line
            child.send_signal(signum)
            assert child.wait(10) == 128 + signum
            assert gone(int(match[1]))
            assert not listening(int(match[2]))
        finally:
            if child.poll() is None:
                child.kill()


@pytest.mark.parametrize("version", ["3.2.0", "3.6.1", "5.1.0"])
def test_pickled_sampler_is_judged_as_the_shared_seed(version: str) -> None:
    """DASK_TABLE: a run of Optuna's Dask example pattern is judged as the shared seed on the
    storage underneath, whatever its own seed policy. On 3.6.1 with seed None, where scripts
    that each build their sampler lose points (#5489), a pickled run that lost a point
    contradicts its row; one that lost none agrees. Every row cites upstream lines."""
    for row in expectations.DASK_TABLE:
        assert row.cite
        assert all(c.startswith("https://github.com/optuna/optuna/blob/v") for c in row.cite)
    for storage in ("pickled-postgresql", "pickled-grpc-sqlite", "dask-memory"):
        scenario = Scenario("concurrent", "none", storage, workers=8)
        clean = run_record(scenario, worker_orders_distinct=1)
        lost = run_record(scenario, missing=2, same_id=2)
        assert expectations.dask_violations(clean, version) == []
        shared = expectations.expected(version, "concurrent", "shared").outcome
        assert bool(expectations.dask_violations(lost, version)) == (shared == "exact")
    with pytest.raises(expectations.NoExpectation):
        expectations.dask_expected(version, "postgresql")
