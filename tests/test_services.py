"""Server storages: reachable or a fast one-line error, and nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import optuna
import pytest

from repro import _compat, expectations, runner, services
from repro.scenarios import SERVER_STORAGES, Scenario
from repro.storages import StorageError, StorageSpec, open_storage

from .helpers import ROOT, require_service, run_cli

pytestmark = pytest.mark.xdist_group("servers")


@pytest.fixture(autouse=True)
def _servers(request: pytest.FixtureRequest) -> None:
    """Every test here needs the servers: CI fails without them, elsewhere they are skipped
    with the reason (tests/helpers.py: require_service)."""
    if request.node.name.startswith("test_unreachable_server"):
        return
    for kind in SERVER_STORAGES:
        require_service(kind)


@pytest.mark.parametrize("kind", SERVER_STORAGES)
def test_service_answers(kind: str) -> None:
    """CI starts the services; a dead one fails here (the fixture) instead of skipping."""
    services.check_reachable(StorageSpec(kind, services.server_url(kind)))


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        (
            StorageSpec("postgresql", "postgresql+psycopg2://u:hunter2@127.0.0.1:1/x"),
            "postgresql+psycopg2://u:***@127.0.0.1:1/x",
        ),
        (
            StorageSpec("mysql", "mysql+pymysql://root:hunter2@127.0.0.1:1/x"),
            "mysql+pymysql://root:***@127.0.0.1:1/x",
        ),
        (StorageSpec("redis", "redis://:hunter2@127.0.0.1:1/0"), "redis://:***@127.0.0.1:1/0"),
    ],
)
def test_unreachable_server_fails_fast_with_one_redacted_line(
    spec: StorageSpec, shown: str
) -> None:
    began = time.monotonic()
    with pytest.raises(StorageError) as caught:
        services.check_reachable(spec)
    message = str(caught.value)
    assert time.monotonic() - began < 10
    assert message.startswith(f"cannot use {shown}: ")
    assert "hunter2" not in message
    assert "\n" not in message
    assert "refused" in message.lower()


@pytest.mark.parametrize("kind", SERVER_STORAGES)
def test_a_failed_run_leaves_nothing_behind(kind: str) -> None:
    """Even a run that times out drops its database / deletes its keys. 1 ms cannot fit a
    fork plus a connection, so the timeout always fires."""
    scenario = Scenario(mode="concurrent", seed_policy="none", storage=kind)
    record = runner.run(scenario, 0, timeout=0.001)
    assert record.error is not None
    assert "timed out" in record.error
    assert services.leftovers(kind) == []


def test_two_hosts_sharing_a_postgresql_url_by_hand() -> None:
    """The README's by-hand recipe: workers started as separate commands that share only a
    URL, then `collect`. The outcome matches the expectation table for this Optuna."""
    scenario_id = "sequential-none-postgresql-w4-g24"
    row = expectations.expected(_compat.OPTUNA_VERSION, "sequential", "none")
    with services.isolated("postgresql", "by-hand") as spec:
        for index in range(4):
            done = run_cli(
                "worker",
                "--storage",
                spec.location,
                "--study",
                "by-hand",
                "--scenario",
                scenario_id,
                "--worker-index",
                str(index),
            )
            assert done.returncode == 0, done.stderr
        done = run_cli("collect", "--storage", spec.location, "--study", "by-hand")
        assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["scenario"] == scenario_id
    assert record["complete"] == 24
    assert sorted({t["worker"] for t in record["trial_log"]}) == [0, 1, 2, 3]
    # loses-points: false-positive bound 7.0e-9 (repro/scenarios.py); exact: forced.
    assert (record["missing"] > 0) == (row.outcome == "loses-points")
    assert services.leftovers("postgresql") == []


def test_redis_by_hand_collect_delete_removes_the_keys() -> None:
    url = services.server_url("redis")
    for index in range(2):
        done = run_cli(
            "worker",
            "--storage",
            url,
            "--study",
            "redis-by-hand",
            "--scenario",
            "threads-shared-redis-w4-g24",
            "--worker-index",
            str(index),
        )
        assert done.returncode == 0, done.stderr
    done = run_cli("collect", "--storage", url, "--study", "redis-by-hand", "--delete")
    assert done.returncode == 0, done.stderr
    assert services.leftovers("redis") == []


def test_concurrent_workers_by_hand_meet_through_the_storage() -> None:
    """Four worker commands started at once on a fresh PostgreSQL database, sharing only the
    URL: the storage barrier puts one trial of every worker in every round."""
    scenario_id = "concurrent-none-postgresql-w4-g24"
    with services.isolated("postgresql", "by-hand-concurrent") as spec:
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "repro",
                    "worker",
                    "--storage",
                    spec.location,
                    "--study",
                    "c",
                    "--scenario",
                    scenario_id,
                    "--worker-index",
                    str(i),
                    "--barrier-timeout",
                    "60",
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(4)
        ]
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
        done = run_cli("collect", "--storage", spec.location, "--study", "c")
        assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    rounds: dict[int, list[int]] = {}
    for t in record["trial_log"]:
        rounds.setdefault(t["phase"], []).append(t["worker"])
    assert sorted(rounds) == list(range(6))
    assert all(sorted(workers) == [0, 1, 2, 3] for workers in rounds.values())


def test_harness_mysql_connections_build_no_tls_context() -> None:
    """A storage the harness opens on this machine's MariaDB (loopback) connects without
    PyMySQL's TLS context, and still works: a study made through it is read back."""
    with services.isolated("mysql", "tls-check", owner=os.getpid()) as spec:
        storage = open_storage(spec)
        try:
            engine = storage.engine  # type: ignore[attr-defined]
            raw = engine.raw_connection()
            try:
                # PyMySQL sets ``ctx`` only where it may use TLS.
                assert getattr(raw.driver_connection, "ctx", None) is None
                assert raw.driver_connection.ssl is False
            finally:
                raw.close()
            study = optuna.create_study(study_name="tls-check", storage=storage)
            assert optuna.load_study(study_name="tls-check", storage=storage).study_name == (
                study.study_name
            )
        finally:
            _compat.dispose(storage)
