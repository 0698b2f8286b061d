"""Faults on server storages: a Redis server that dies mid-run or stops answering, an interrupt
while runs hold PostgreSQL databases, and `clean` for what a killed run left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repro import runner, services
from repro.scenarios import Scenario
from repro.storages import StorageSpec

from .helpers import ROOT, require_service, run_cli
from .procs import Repro, redis_server
from .test_durability import printed_runs, results_file

pytestmark = pytest.mark.xdist_group("servers")


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_server_dying_mid_run_keeps_the_runs_it_measured(tmp_path: Path, jobs: str) -> None:
    """Our own redis-server, shut down after a run printed its result: that run stays
    measured, the runs after it say why they measured nothing, the failed clean-up is a
    ``teardown_error`` of its own, and no lane dies (no traceback, no "run not measured")."""
    with redis_server(tmp_path) as (url, server):
        run = Repro(
            "run", "--out", str(tmp_path), "--storage", "redis", "-s", "sequential-none-*",
            "-r", "4", "-j", jobs, "--remedies", "none",
            *["--space", '{"x": [0, 1, 2, 3]}', "--workers", "2"],
            env={"REPRO_REDIS_URL": url},
        )  # fmt: skip
        try:
            first = run.wait_for("[1/")
            server.send_signal(signal.SIGKILL)
            server.wait(10)
            assert run.finish() == 1, run.stderr
        finally:
            run.kill()
    assert "Traceback" not in run.stderr, run.stderr
    runs = {(r["scenario"], r["repetition"]): r for r in results_file(tmp_path)["runs"]}
    assert len(runs) == 4
    for key in printed_runs([first]):
        assert runs[key]["error"] is None
        assert runs[key]["complete"] == 4
    assert any(r.get("teardown_error") for r in runs.values()), runs
    assert not any("run not measured" in (r["error"] or "") for r in runs.values())
    assert "TEARDOWN:" in run.stderr


def test_a_redis_server_that_stops_answering_is_an_error_at_the_run_timeout(
    tmp_path: Path,
) -> None:
    """On Redis the run makes its study in its own process; a server that stops answering
    (SIGSTOP: the kernel still accepts the connection) makes that step fail within the run's
    timeout, recorded with the client's TimeoutError, instead of blocking the run for good."""
    with redis_server(tmp_path) as (url, server):
        server.send_signal(signal.SIGSTOP)
        try:
            began = time.monotonic()
            record = runner.run(
                Scenario("sequential", "none", "redis"),
                0,
                storage=StorageSpec("redis", url, namespace="stopped"),
                timeout=2,
            )
            took = time.monotonic() - began
        finally:
            server.send_signal(signal.SIGCONT)
    assert record.error is not None
    assert "TimeoutError" in record.error.strip().splitlines()[-1]
    assert took < 6, took


def test_interrupt_removes_the_databases_of_the_runs_under_way(tmp_path: Path) -> None:
    """SIGTERM to the whole process group while runs hold PostgreSQL databases."""
    require_service("postgresql")
    run = Repro(
        "run", "--out", str(tmp_path), "--storage", "postgresql", "-s", "sequential-none-*",
        "--forced-runs", "6", "--remedies", "none", session=True,
    )  # fmt: skip
    try:
        run.wait_for("/6] ")
        os.killpg(run.proc.pid, signal.SIGTERM)
        assert run.finish(timeout=30) == 143, run.stderr
    finally:
        run.kill()
    assert printed_runs(run.lines) <= {
        (r["scenario"], r["repetition"]) for r in results_file(tmp_path)["runs"]
    }
    assert services.leftovers("postgresql") == []


def test_clean_lists_then_removes_leftovers_but_not_while_a_run_lives(tmp_path: Path) -> None:
    for kind in ("postgresql", "redis"):
        require_service(kind)
    scratch = tmp_path / "scratch"
    (scratch / "grid-repro-left").mkdir(parents=True)
    tag = f"{services.DATABASE_PREFIX}{services.run_tag()}"
    database = f"{tag}left{os.getpid()}"
    subprocess.run(
        [sys.executable, "-c", f"from repro import services; services._admin("
         f"services.server_url('postgresql'), 'CREATE DATABASE {database}')"],
        cwd=ROOT, check=True, timeout=60,
    )  # fmt: skip
    env: dict[str, str | None] = {"REPRO_TMPDIR": str(scratch)}
    dry = run_cli("clean", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"postgresql\t{database}" in dry.stdout
    assert f"scratch\t{scratch / 'grid-repro-left'}" in dry.stdout
    assert "dry run" in dry.stderr
    assert database in services.leftovers("postgresql")
    # A live run (a marker held by a child of ours) blocks removal.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from repro import services\n"
         "with services.alive_marker():\n print('held', flush=True); sys.stdin.read()"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "REPRO_TMPDIR": str(scratch)},
    )  # fmt: skip
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "held\n"
        refused = run_cli("clean", "--yes", env=env)
        assert refused.returncode == 1, refused.stderr
        assert f"pid {holder.pid}" in refused.stderr
        assert database in services.leftovers("postgresql")
    finally:
        holder.communicate("", timeout=30)
    done = run_cli("clean", "--yes", env=env)
    assert done.returncode == 0, done.stderr
    assert database not in services.leftovers("postgresql")
    assert not (scratch / "grid-repro-left").exists()
