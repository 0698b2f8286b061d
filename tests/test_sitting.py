"""The before/after sitting (`python -m repro.bench.sitting`): what it reads from a results file
is what the runs hold, a forced outcome that differs between commands is named, the table is
rendered from the JSON alone, and bad input is one line and exit 2. The sitting itself runs
`nox -s repro` in two checkouts, minutes each; results/sitting.json is its real output."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from repro import jsonfile, results
from repro.bench import sitting
from repro.bench.sitting import Command, Sitting, VersionTimes
from repro.scenarios import UPSTREAM, Scenario

from .helpers import ROOT, run_cli, run_record


def results_file(version: str, *runs: results.RunRecord) -> results.ResultsFile:
    return results.ResultsFile(version, "3.11", "linux", {}, list(runs), wall_seconds=12.5)


def test_version_times_are_what_the_runs_hold() -> None:
    """Seconds per storage are the runs' own; scenarios whose outcome the code forces (on
    3.6.1: points lost without a seed, exact with a shared one) are listed with each run's
    outcome, and a run that contradicts its row is counted."""
    shared = Scenario("sequential", "shared", "postgresql")
    f = results_file(
        "3.6.1",
        run_record(UPSTREAM, missing=6, orders=4, seconds=1.5),
        run_record(UPSTREAM, repetition=1, missing=0, orders=4, seconds=2.0),
        run_record(shared, seconds=3.0),
    )
    times = sitting.version_times(f)
    assert times.storage_seconds == {"sqlite": 3.5, "postgresql": 3.0}
    assert times.runs == 3
    assert times.wall_seconds == 12.5
    assert times.forced == {UPSTREAM.id: ["lost", "exact"], shared.id: ["exact"]}
    # The second #5489 run lost nothing, which contradicts its loses-points row.
    assert times.violations == 1


def test_verdict_times_are_the_first_verdict_line_of_each_version() -> None:
    """The matrix prints a version's verdict again; the first one counts. Other lines, and a
    verdict quoted inside another line, do not."""
    stamped = [
        (2.04, "nox > Running session repro(3.2.0)\n"),
        (4.46, "#5489 verdict, Optuna 3.2.0: each of the 24 grid points evaluated exactly once\n"),
        (12.2, "#5489 verdict, Optuna 3.6.1: 9 of 24 grid points never evaluated\n"),
        (30.0, "  note: #5489 verdict, Optuna 5.0.0: quoted\n"),
        (40.0, "#5489 verdict, Optuna 3.2.0: each of the 24 grid points evaluated exactly once\n"),
    ]
    assert sitting.verdict_times(stamped) == {"3.2.0": 4.5, "3.6.1": 12.2}


def test_machine_cpu_counts_busy_time_since_boot() -> None:
    """What the sitting subtracts: busy CPU seconds of the whole machine, rising with work."""
    before = sitting.machine_cpu()
    assert before is not None
    assert before > 0
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    after = sitting.machine_cpu()
    assert after is not None
    # This process's own 0.3 s is in the machine's busy time, whatever else runs.
    assert after - before >= 0.25


def test_racy_scenarios_are_not_compared() -> None:
    """On 3.2.0 concurrent workers race: their outcome depends on timing, so it is no verdict
    that must repeat."""
    racy = Scenario("concurrent", "none", "sqlite")
    assert sitting.version_times(results_file("3.2.0", run_record(racy))).forced == {}


def sample(after_forced: list[str]) -> Sitting:
    def command(label: str, pair: int, forced: list[str]) -> Command:
        times = VersionTimes("3.6.1", 40.0, 60, {"sqlite": 20.0}, 0, {UPSTREAM.id: forced})
        return Command(
            label,
            pair,
            100.0 + pair,
            0,
            150.0,
            [times],
            machine_cpu_seconds=191.9,
            cores=2,
            verdict_seconds={"3.6.1": 12.0},
        )

    return Sitting(
        checkouts={"before": "/a", "after": "/b"},
        commits={"before": "a" * 40, "after": "b" * 40},
        command="nox -s repro --",
        commands=[
            command("before", 1, ["lost"]),
            command("after", 1, after_forced),
        ],
    )


def test_a_forced_outcome_that_differs_is_named() -> None:
    assert sitting.verdicts_differ(sample(["lost"])) == []
    assert sitting.verdicts_differ(sample(["exact"])) == [f"3.6.1 {UPSTREAM.id}"]
    assert "differ for 3.6.1" in sitting.render(sample(["exact"]))[-1]


def test_render_reads_the_json_alone(tmp_path: Path) -> None:
    path = tmp_path / "sitting.json"
    jsonfile.write_json(path, sample(["lost"]).to_json(), schema=sitting.SCHEMA)
    done = run_cli("render", str(path), module="repro.bench.sitting")
    assert done.returncode == 0, done.stderr
    # The columns keep the order the commands alternated in, which sorted JSON keys do not.
    assert done.stdout.startswith("| | before (aaaaaaa) | after (bbbbbbb) |\n")
    assert "| `nox -s repro`, s (mean of 1, 1) | 101.0 (101.0) | 101.0 (101.0) |" in done.stdout
    assert (
        "| its CPU seconds, harness processes only | 150.0 (150.0) | 150.0 (150.0) |" in done.stdout
    )
    assert "| Optuna 3.6.1: runs / lanes' wall, s | 60 / 40.0 | 60 / 40.0 |" in done.stdout
    assert (
        "| every version's #5489 verdict printed, s after the start | 12.0 (12.0) | 12.0 (12.0) |"
        in done.stdout
    )
    # 191.9 busy CPU seconds over 2 cores x 101 s of wall.
    assert "servers included), % of its cores | 191.9 (95%) | 191.9 (95%) |" in done.stdout
    assert "identical in every command" in done.stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--checkout", "before"], "give LABEL=PATH"),
        (["--checkout", "before=/nonexistent-dir"], "has no noxfile.py"),
        (["--checkout", f"a={ROOT}"], "give two checkouts"),
        (["--checkout", f"a={ROOT}", "--checkout", f"a={ROOT}"], "given twice"),
        (["--pairs", "0"], "must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], says: str) -> None:
    done = run_cli("run", *args, module="repro.bench.sitting")
    assert done.returncode == 2
    assert says in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
