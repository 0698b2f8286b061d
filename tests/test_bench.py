"""The bench (`nox -s bench`): its records round-trip as strict JSON, the ratio a reader
recomputes from the JSON is the stored one, every worker count gives each worker trials, the
command line answers bad input in one line, and one tiny real bench runs. No assertion on a
time or on the ratio's value: the machine is shared and the numbers are noise at this size."""

from __future__ import annotations

import json
import socket
import statistics
from pathlib import Path
from typing import Any

import pytest

from repro import bench
from repro.bench import records
from repro.bench.records import BenchFile, Run, StorageBench
from repro.scenarios import DEFAULT_WORKERS, MAX_WORKERS, Scenario

from .helpers import run_cli


def strict_json(path: Path) -> dict[str, Any]:
    """Parse as strict JSON parsers do: NaN and Infinity are not JSON."""

    def refuse(token: str) -> None:
        raise AssertionError(f"{path} holds {token}, which strict JSON parsers reject")

    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)
    return data


def sample() -> BenchFile:
    """Two measured storages (one with a failed run whose time must not count) and a
    skipped one."""
    sqlite = StorageBench(
        "sqlite",
        "sequential-none-sqlite-w4-g24",
        harness=[
            Run(1.3, [0.05, 0.06, None, 0.05], [0.2, 0.2, 0.0, 0.2], 24),
            Run(9.0, error="worker 2: killed"),
            Run(1.1, [0.04, 0.05, 0.05, 0.04], [0.2, 0.2, 0.2, 0.2], 24),
        ],
        plain=[Run(1.0, complete=24), Run(0.9, complete=24), Run(1.2, complete=24)],
    )
    journal = StorageBench(
        "journal",
        "sequential-none-journal-w4-g24",
        harness=[Run(0.5, [0.05] * 4, [0.02] * 4, 24)],
        plain=[Run(0.5, [0.04] * 4, [0.01] * 4, 24)],
    )
    redis = StorageBench(
        "redis",
        "sequential-none-redis-w4-g24",
        records.SKIPPED,
        "cannot use redis://127.0.0.1:9/0: ConnectionError: refused",
    )
    return BenchFile("5.0.0", "3.11.7", "Linux", {"numpy": "2"}, [sqlite, journal, redis], 3)


def test_records_round_trip_as_strict_json(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    records.save(path, sample())
    assert records.load(path) == sample()
    assert strict_json(path)["schema"] == records.SCHEMA


def test_ratio_recomputed_from_the_json_is_the_stored_one(tmp_path: Path) -> None:
    """A reader with the JSON alone gets the stored medians, ratio and where the time went;
    failed runs count for nothing (with the failed 9.0 s run the harness median would be 1.3,
    not 1.2)."""
    path = tmp_path / "bench.json"
    records.save(path, sample())
    stored = {s["storage"]: s for s in strict_json(path)["storages"]}
    for name in ("sqlite", "journal"):
        entry = stored[name]
        harness = statistics.median(r["seconds"] for r in entry["harness"] if r["error"] is None)
        plain = statistics.median(r["seconds"] for r in entry["plain"] if r["error"] is None)
        assert entry["harness_median_s"] == pytest.approx(harness)
        assert entry["plain_median_s"] == pytest.approx(plain)
        assert entry["ratio"] == pytest.approx(harness / plain, abs=5e-4)
        for side in ("harness", "plain"):
            runs = [r for r in entry[side] if r["error"] is None]
            startup = [sum(filter(None, r["startup_s"])) for r in runs]
            optimize = [sum(r["optimize_s"]) for r in runs]
            outside = [r["seconds"] - a - b for r, a, b in zip(runs, startup, optimize)]
            assert entry[f"{side}_where"] == pytest.approx(
                {
                    "startup_s": statistics.median(startup),
                    "optimize_s": statistics.median(optimize),
                    "outside_s": statistics.median(outside),
                },
                abs=5e-5,
            )
    assert stored["sqlite"]["ratio"] == pytest.approx(1.2)
    assert stored["sqlite"]["startup_median_s"] == pytest.approx(0.05)
    assert stored["redis"]["ratio"] is None
    assert stored["redis"]["harness_where"] is None
    assert stored["redis"]["harness"] == stored["redis"]["plain"] == []


def test_over_goal_names_measured_entries_above_the_ratio_or_without_one() -> None:
    """The goal is a tenth: 1.1 holds it, 1.15 does not."""
    at_goal = StorageBench("sqlite", "s", harness=[Run(1.1)], plain=[Run(1.0)], workers=64)
    slow = StorageBench("mysql", "m", harness=[Run(2.3)], plain=[Run(2.0)], workers=64)
    failed = StorageBench("postgresql", "p", harness=[Run(1.0, error="x")], plain=[Run(1.0)])
    entries = [*sample().storages, at_goal, slow, failed]
    measured = BenchFile("5.0.0", "3.11", "Linux", {}, entries, 1)
    assert [s.label for s in measured.over_goal()] == ["sqlite w4", "mysql w64", "postgresql w4"]


def test_an_entry_without_a_worker_count_is_the_default_scenario() -> None:
    """A file from before the worker counts timed the default scenario, at 4 workers."""
    data = sample().storages[0].to_json()
    del data["workers"]
    assert StorageBench.from_json(data).workers == 4


def test_every_worker_count_gives_each_worker_four_trials_or_more() -> None:
    """Each worker has trials of its own after its start-up: at least 4, the whole grid
    shared out; 4 workers are the harness's default scenario, 64 run a 256-point grid."""
    for workers in range(1, MAX_WORKERS + 1):
        chosen = bench.scenario("sqlite", workers)
        assert (chosen.mode, chosen.seed_policy, chosen.workers) == ("sequential", "none", workers)
        assert chosen.trials_each >= 4
        assert chosen.trials_each * workers >= chosen.grid_size > (workers - 1) * chosen.trials_each
        assert len(dict(chosen.search_space)) == 2
    assert bench.scenario("sqlite", DEFAULT_WORKERS) == Scenario("sequential", "none", "sqlite")
    assert bench.scenario("sqlite", 64).grid_size == 256


def test_a_value_that_is_not_finite_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    broken = StorageBench("sqlite", "s", harness=[Run(float("nan"))], plain=[Run(1.0)])
    with pytest.raises(ValueError, match="JSON compliant"):
        records.save(path, BenchFile("5.0.0", "3.11", "Linux", {}, [broken], 1))
    assert not path.exists()


def closed_loopback_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["-r", "0"], "argument -r/--repetitions: 0 must be at least 1"),
        (["--storage", "oracle"], "argument --storage: invalid choice: 'oracle'"),
        (["--timeout", "nan"], "argument --timeout: nan must be a finite number"),
        (["--out", "results"], "--out results is a directory"),
        (["-w", "0"], "argument -w/--workers: 0 must be at least 1"),
        (["-w", "4", "65"], "argument -w/--workers: 65 is above the bound of 64 workers"),
        (["--no-services", "--storage", "redis"], "no storage left to bench"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    done = run_cli(*args, module="repro.bench", timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("python -m repro.bench: error: ")
    assert says in done.stderr


@pytest.mark.parametrize("module", ["repro.bench", "repro.bench.plain"])
def test_an_unreachable_server_asked_for_is_one_line_and_exit_2(
    module: str, tmp_path: Path
) -> None:
    url = f"redis://127.0.0.1:{closed_loopback_port()}/0"
    out = ["--out", str(tmp_path / "bench.json")] if module == "repro.bench" else []
    done = run_cli(
        "--storage", "redis", *out, module=module, timeout=60, env={"REPRO_REDIS_URL": url}
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"python -m {module}: error: cannot use {url}")
    assert not (tmp_path / "bench.json").exists()


@pytest.mark.xdist_group("processes")
def test_a_tiny_real_bench_on_the_journal_file(tmp_path: Path) -> None:
    """One repetition of each side on the journal file at 4 and 8 workers, through the
    command line: both sides run the whole grid, every worker's start-up is recorded, and
    the ratio is the one recomputed from the JSON."""
    path = tmp_path / "bench.json"
    done = run_cli(
        *("--storage", "journal", "-w", "4", "8", "-r", "1", "--out", str(path)),
        module="repro.bench",
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    data = strict_json(path)
    assert [(e["storage"], e["workers"]) for e in data["storages"]] == [
        ("journal", 4),
        ("journal", 8),
    ]
    for entry in data["storages"]:
        workers = entry["workers"]
        scenario = bench.scenario("journal", workers)
        assert (entry["status"], entry["scenario"]) == (records.MEASURED, scenario.id)
        (harness,) = entry["harness"]
        (plain,) = entry["plain"]
        assert (harness["error"], plain["error"]) == (None, None)
        assert harness["complete"] == plain["complete"] == scenario.grid_size
        for run in (harness, plain):
            assert len(run["startup_s"]) == len(run["optimize_s"]) == workers
            assert all(s > 0 for s in run["startup_s"] + run["optimize_s"])
        assert entry["ratio"] == pytest.approx(harness["seconds"] / plain["seconds"], abs=5e-4)
        assert f"journal w{workers}: harness {harness['seconds']:.3f} s" in done.stderr
    assert data["storages"][0]["scenario"] == "sequential-none-journal-w4-g24"


@pytest.mark.xdist_group("processes")
def test_the_plain_script_runs_by_hand() -> None:
    """`python -m repro.bench.plain` is the plain side on its own, as a user can run it."""
    done = run_cli("--storage", "journal", "-w", "8", module="repro.bench.plain", timeout=120)
    assert done.returncode == 0, done.stderr
    run = Run.from_json(json.loads(done.stdout))
    assert (run.error, run.complete, len(run.startup_s)) == (None, 32, 8)
