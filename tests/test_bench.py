"""The bench (`nox -s bench`): its records round-trip as strict JSON, the ratio a reader
recomputes from the JSON is the stored one, the command line answers bad input in one line,
and one tiny real bench runs. No assertion on a time or on the ratio's value: the machine is
shared and the numbers are noise at this size."""

from __future__ import annotations

import json
import socket
import statistics
from pathlib import Path
from typing import Any

import pytest

from repro.bench import records
from repro.bench.records import BenchFile, Run, StorageBench

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
    """A reader with the JSON alone gets the stored medians and ratio; failed runs count for
    nothing (with the failed 9.0 s run the harness median would be 1.3, not 1.2)."""
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
    assert stored["sqlite"]["ratio"] == pytest.approx(1.2)
    assert stored["sqlite"]["startup_median_s"] == pytest.approx(0.05)
    assert stored["redis"]["ratio"] is None
    assert stored["redis"]["harness"] == stored["redis"]["plain"] == []


def test_over_goal_names_measured_storages_above_the_ratio_or_without_one() -> None:
    slow = StorageBench("mysql", "m", harness=[Run(2.5)], plain=[Run(2.0)])
    failed = StorageBench("postgresql", "p", harness=[Run(1.0, error="x")], plain=[Run(1.0)])
    bench = BenchFile("5.0.0", "3.11", "Linux", {}, [*sample().storages, slow, failed], 1)
    assert [s.storage for s in bench.over_goal()] == ["mysql", "postgresql"]


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
    """One repetition of each side on the journal file, through the command line: both sides
    run the whole grid, every harness worker's start-up is recorded, and the ratio is the
    one recomputed from the JSON."""
    path = tmp_path / "bench.json"
    done = run_cli(
        "--storage", "journal", "-r", "1", "--out", str(path), module="repro.bench", timeout=240
    )
    assert done.returncode == 0, done.stderr
    data = strict_json(path)
    (entry,) = data["storages"]
    assert (entry["storage"], entry["status"]) == ("journal", records.MEASURED)
    assert entry["scenario"] == "sequential-none-journal-w4-g24"
    (harness,) = entry["harness"]
    (plain,) = entry["plain"]
    assert (harness["error"], plain["error"]) == (None, None)
    assert harness["complete"] == plain["complete"] == 24
    for run in (harness, plain):
        assert len(run["startup_s"]) == len(run["optimize_s"]) == 4
        assert all(s > 0 for s in run["startup_s"] + run["optimize_s"])
    assert entry["ratio"] == pytest.approx(harness["seconds"] / plain["seconds"], abs=5e-4)
    assert f"journal: harness {harness['seconds']:.3f} s" in done.stderr


@pytest.mark.xdist_group("processes")
def test_the_plain_script_runs_by_hand() -> None:
    """`python -m repro.bench.plain` is the plain side on its own, as a user can run it."""
    done = run_cli("--storage", "journal", module="repro.bench.plain", timeout=120)
    assert done.returncode == 0, done.stderr
    run = Run.from_json(json.loads(done.stdout))
    assert (run.error, run.complete, len(run.startup_s)) == (None, 24, 4)
