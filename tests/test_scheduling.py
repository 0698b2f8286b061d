"""Where a run's time goes: how many runs each scenario gets, the order lanes take them in,
the #5489 verdict printed first, and one database per server kind for a whole invocation."""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

import pytest

from repro import execution, expectations, runner, services, workers
from repro.fork import call
from repro.scenarios import DEFAULT_WORKERS, UPSTREAM, Scenario, matrix, validate_space
from repro.storages import StorageSpec

from .helpers import require_service, run_cli


def test_forced_outcomes_get_one_run_and_timing_dependent_ones_their_repetitions() -> None:
    """A row the code forces (exact, loses-points) is decided by its first run on the default
    grid; a racy row, a custom shape or a version without rows gets every repetition."""
    assert expectations.runs_needed("3.6.1", UPSTREAM, 5, 1) == 1  # loses-points
    shared = Scenario("concurrent", "shared", "sqlite")
    assert expectations.runs_needed("5.0.0", shared, 5, 1) == 1  # exact
    assert expectations.runs_needed("3.2.0", shared, 5, 1) == 5  # racy
    small = Scenario("sequential", "none", "sqlite", 2, validate_space({"x": [0, 1, 2, 3]}))
    assert expectations.runs_needed("3.6.1", small, 5, 1) == 5  # the bound is for the default grid
    budget = Scenario("sequential", "none", "sqlite", DEFAULT_WORKERS, trials_per_worker=2)
    assert expectations.runs_needed("3.6.1", budget, 5, 1) == 5
    assert expectations.runs_needed("2.0.0", UPSTREAM, 5, 1) == 5  # no row covers it


def test_every_forced_row_of_the_table_gets_the_forced_count() -> None:
    """The rule reads the table and nothing else: for each pinned release, a scenario gets the
    forced count exactly when its row is exact or loses-points."""
    for version in ("3.2.0", "3.6.1", "5.0.0"):
        for scenario in matrix():
            outcome = expectations.expected(version, scenario.mode, scenario.seed_policy).outcome
            runs = expectations.runs_needed(version, scenario, 3, 1)
            assert runs == (1 if outcome in expectations.FORCED else 3), (version, scenario.id)


def test_the_5489_pattern_is_taken_first_then_the_costliest_storages() -> None:
    scenarios = matrix()
    todo = execution.schedule(scenarios, {s.id: 2 for s in scenarios})
    assert sorted((s.id, rep) for s, rep in todo) == sorted(
        (s.id, rep) for s in scenarios for rep in range(2)
    )
    assert todo[0] == (UPSTREAM, 0)
    costs = [execution.STORAGE_COST[s.storage] for s, _ in todo[1:]]
    assert costs == sorted(costs, reverse=True)


@pytest.mark.xdist_group("processes")
def test_the_5489_verdict_is_the_first_thing_a_run_prints(tmp_path: Path) -> None:
    """Even with -q and the #5489 scenario listed last, its verdict follows the header line."""
    done = run_cli(
        "run",
        "-q",
        "--out",
        str(tmp_path),
        "-s",
        "threads-none-journal-*",
        "-s",
        UPSTREAM.id,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[0].startswith("Optuna "), lines
    assert lines[1].startswith("#5489 verdict, Optuna "), lines
    assert "as expected" in lines[1], lines


@pytest.mark.xdist_group("servers")
@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_one_database_per_server_kind_for_the_whole_invocation(kind: str) -> None:
    """Runs share one database per server kind, named after the invoking process (so its
    sweep and `clean` find it), dropped when the invocation ends. Optuna's tables are made
    once, up front: a study is created in it without creating or checking them."""
    require_service(kind)
    prefix = services.database_prefix(os.getpid())
    with ExitStack() as stack:
        shared = execution.shared_databases({kind, "sqlite", "redis"}, stack)
        assert set(shared) == {kind}
        assert prefix in shared[kind].location
        assert shared[kind].schema_ready
        call(workers.create_study, shared[kind], "tables-made-once", UPSTREAM, timeout=60)
        assert [n for n in services.leftovers(kind) if n.startswith(prefix)]
    assert not [n for n in services.leftovers(kind) if n.startswith(prefix)]


@pytest.mark.xdist_group("processes")
def test_sqlite_runs_copy_one_template_made_per_invocation() -> None:
    """The SQLite template has Optuna's tables (a study is created in it without creating or
    checking them), lives in this process's scratch folder (the sweep and `clean` find it)
    and is gone when the invocation ends; a run made from it measures as usual."""
    with ExitStack() as stack:
        templates = execution.sqlite_template({"sqlite", "journal", "mysql"}, stack)
        assert set(templates) == {"sqlite"}
        template = Path(templates["sqlite"])
        assert template.parent.name.startswith(services.scratch_prefix(os.getpid()))
        before = template.read_bytes()
        record = runner.run(UPSTREAM, 0, template=str(template))
        assert record.error is None
        assert record.complete == record.grid_size
        assert template.read_bytes() == before  # the run wrote to its own copy
        tables = StorageSpec("sqlite", f"sqlite:///{template}", schema_ready=True)
        call(workers.create_study, tables, "tables-made-once", UPSTREAM, timeout=60)
    assert not template.parent.exists()


@pytest.mark.xdist_group("processes")
def test_xdist_groups_are_honoured(request: pytest.FixtureRequest) -> None:
    """Under `-n` the groups keep forking tests to one worker each and the server tests apart
    from each other (their leftover checks see only their own names). pytest 9.2 with
    pytest-xdist 3.8 silently stops applying them; this fails then."""
    if not hasattr(request.config, "workerinput"):
        pytest.skip("not running under pytest-xdist")
    assert request.node.nodeid.endswith("@processes"), request.node.nodeid
