"""Evidence is never lost: concurrent runs into one folder, a killed lane, a run killed
outright, runs that measured nothing, unreadable results files, strict JSON. Every test
injects a real fault into real processes; every wait is bounded."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from repro import _compat, jsonfile, results, services
from repro.metrics import compute
from repro.results import RunRecord
from repro.scenarios import Scenario, validate_space

from .helpers import RESULTS, run_cli, run_record
from .procs import Repro, wait_empty

pytestmark = pytest.mark.xdist_group("processes")

SMALL = ["--space", '{"x": [0, 1, 2, 3]}', "--workers", "2"]
# A pattern such as 'sequential-none-*' also selects the default remedy scenarios on SQLite.
NO_REMEDIES = ["--remedies", "none"]


def results_file(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (out / f"optuna-{_compat.OPTUNA_VERSION}.json").read_text(), parse_constant=_refuse
    )
    return data


def _refuse(token: str) -> None:
    raise AssertionError(f"{token} is not strict JSON")


def printed_runs(lines: list[str]) -> set[tuple[str, int]]:
    """(scenario, repetition) of every progress line ``[n/N] SCENARIO rREP: ...``."""
    found = set()
    for line in lines:
        if "] " in line and line.lstrip().startswith("["):
            scenario, rep = line.split("] ", 1)[1].split(":", 1)[0].rsplit(" r", 1)
            found.add((scenario, int(rep)))
    return found


def test_concurrent_runs_into_one_folder_keep_both(tmp_path: Path) -> None:
    """Two runs into one --out at once: the second to finish used to overwrite the first's
    scenarios with the file it had read at its start. Run A is stopped (SIGSTOP) after it
    has read the folder, B runs to the end, then A goes on: both must be in the file."""
    base = ["run", "--out", str(tmp_path), "--storage", "sqlite", "-r", "1", *SMALL, *NO_REMEDIES]
    first = Repro(*base, "-s", "sequential-none-*")
    try:
        first.wait_for(" lanes")
        os.kill(first.proc.pid, signal.SIGSTOP)
        second = run_cli(*base, "-s", "threads-none-*")
        os.kill(first.proc.pid, signal.SIGCONT)
        assert second.returncode == 0, second.stderr
        assert first.finish() == 0, first.stderr
    finally:
        first.kill()
    assert "wrote" in second.stderr
    assert "wrote" in first.stderr
    scenarios = sorted(r["scenario"] for r in results_file(tmp_path)["runs"])
    shape = Scenario("sequential", "none", "sqlite", 2, validate_space({"x": [0, 1, 2, 3]})).id
    assert scenarios == [shape, shape.replace("sequential-", "threads-", 1)]
    assert not list(tmp_path.glob("*.log.jsonl"))


def test_a_killed_lane_keeps_its_finished_runs(tmp_path: Path) -> None:
    """SIGKILL to every lane after one printed a result: the printed runs are in the file
    as measured, the others say which lane died and from which signal."""
    run = Repro(
        "run", "--out", str(tmp_path), "-s", "sequential-none-journal-*", "--forced-runs", "6"
    )
    try:
        run.wait_for("/6] ")
        for lane in run.lane_pids():
            os.kill(lane, signal.SIGKILL)
        assert run.finish() == 1, run.stderr
    finally:
        run.kill()
    runs = {(r["scenario"], r["repetition"]): r for r in results_file(tmp_path)["runs"]}
    assert len(runs) == 6
    for key in printed_runs(run.lines):
        assert runs[key]["error"] is None
        assert runs[key]["complete"] > 0
    lost = [r["error"] for r in runs.values() if r["error"]]
    assert lost, "every run finished before the lanes were killed"
    assert all("run not measured: lane pid" in e and "from SIGKILL" in e for e in lost), lost


def test_a_run_killed_outright_is_recovered_by_the_next_report(tmp_path: Path) -> None:
    """SIGKILL to the run and its lanes (a power cut, the OOM killer): the runs it had
    printed are in its log, and the next `report` folds them into the results file."""
    run = Repro(
        "run",
        "--out",
        str(tmp_path),
        "-s",
        "sequential-none-journal-*",
        "--forced-runs",
        "6",
        session=True,
    )
    try:
        run.wait_for("/6] ")
        lanes = os.getpgid(run.lane_pids()[0])
        assert lanes != run.proc.pid, "the lanes are not in a process group of their own"
        os.kill(run.proc.pid, signal.SIGKILL)
        os.killpg(lanes, signal.SIGKILL)
        run.finish()
    finally:
        run.kill()
        # What a SIGKILL leaves by design (the storages of the runs under way) is `clean`'s
        # to remove; this test removes its own, by the killed run's pid.
        services.sweep_scratch(run.proc.pid)
    assert not (tmp_path / f"optuna-{_compat.OPTUNA_VERSION}.json").exists()
    assert list(tmp_path.glob("*.log.jsonl"))
    assert wait_empty(lanes) == []
    done = run_cli("report", "--results", str(tmp_path))
    assert done.returncode == 0, done.stderr
    runs = {(r["scenario"], r["repetition"]) for r in results_file(tmp_path)["runs"]}
    assert printed_runs(run.lines) <= runs
    assert not list(tmp_path.glob("*.log.jsonl"))


@pytest.mark.parametrize(
    ("args", "env"),
    [
        ([], {"REPRO_TMPDIR": "/nonexistent"}),
        (["--timeout", "0.001"], {}),
    ],
    ids=["no-scratch-dir", "tiny-timeout"],
)
def test_runs_that_measured_nothing_never_replace_measured_ones(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    base = ["run", "--out", str(tmp_path), "-s", "sequential-none-journal-*", "-r", "1", *SMALL]
    assert run_cli(*base).returncode == 0
    good = results_file(tmp_path)["runs"]
    assert good[0]["error"] is None
    failed = run_cli(*base, *args, env=dict(env))
    assert failed.returncode == 1, failed.stderr
    assert "ERROR: sequential-none-journal" in failed.stderr
    runs = results_file(tmp_path)["runs"]
    assert runs[: len(good)] == good
    assert runs[len(good) :]
    assert all(r["error"] for r in runs[len(good) :])


# Scenarios of one shape on the journal file, as a small filtered run makes them.
SMALL_SPACE = validate_space({"x": [0, 1, 2, 3]})
A, B, C = (
    Scenario("sequential", policy, "journal", workers=2, search_space=SMALL_SPACE)
    for policy in ("none", "shared", "per-worker")
)
D = Scenario("concurrent", "none", "journal", workers=2, search_space=SMALL_SPACE)


def _record(scenario: Scenario, invocation: str, *, measured: bool) -> RunRecord:
    if measured:
        return run_record(scenario, invocation=invocation)
    # What the runner records of a run that read no trial back.
    nothing = compute([], scenario.search_space)
    return run_record(
        scenario, invocation=invocation, error="run not measured: outage", measured=nothing
    )


def test_merge_rule() -> None:
    """results.REPLACEMENT_RULE on hand-built runs of four invocations: ``old`` (0-10 s),
    ``overlap`` (5-15 s), ``clean`` (20-30 s) and ``failing`` (40-50 s)."""
    invocations = {
        name: results.Invocation(name, name, started, ended)
        for name, started, ended in [
            ("old", 0, 10), ("overlap", 5, 15), ("clean", 20, 30), ("failing", 40, 50),
        ]
    }  # fmt: skip
    a_old, a_clean = _record(A, "old", measured=True), _record(A, "clean", measured=True)
    b_old, b_failing = _record(B, "old", measured=True), _record(B, "failing", measured=False)
    c_old, c_overlap = _record(C, "old", measured=True), _record(C, "overlap", measured=True)
    d_old, d_failing = _record(D, "old", measured=False), _record(D, "failing", measured=False)
    a_half = _record(A, "failing", measured=True)
    runs = [a_old, b_old, c_old, d_old, a_clean, b_failing, c_overlap, d_failing]
    # A later clean invocation replaces; a failing one or an overlapping one does not.
    assert results.merge(runs, invocations) == [
        b_old, c_old, d_old, a_clean, b_failing, c_overlap, d_failing,
    ]  # fmt: skip
    # An invocation with one failed run of a scenario replaces none of its earlier runs.
    half = [a_old, a_half, dataclasses.replace(a_half, error="crash")]
    assert results.merge(half, invocations) == half


def test_run_refuses_an_unreadable_results_file(tmp_path: Path) -> None:
    """A newer schema or a corrupt file: one line naming it, exit 2, before any run, and
    the file is left exactly as it was."""
    path = tmp_path / f"optuna-{_compat.OPTUNA_VERSION}.json"
    for text in ['{"schema": 2, "runs": [], "future_field": 1}\n', '{"runs": [\n']:
        path.write_text(text)
        done = run_cli("run", "--out", str(tmp_path), "-s", "threads-none-journal-*", "-r", "1")
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert str(path) in done.stderr
        assert path.read_text() == text


def test_report_renders_what_it_can_and_names_what_it_skipped(tmp_path: Path) -> None:
    good = results.load(RESULTS / "optuna-3.6.1.json")
    results.save(tmp_path / "optuna-3.6.1.json", good)
    (tmp_path / "optuna-9.0.0.json").write_text('{"schema": 7}\n')
    (tmp_path / "optuna-9.1.0.json").write_text("{not json\n")
    done = run_cli("report", "--results", str(tmp_path))
    assert done.returncode == 2, done.stderr
    skipped = [line for line in done.stderr.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 2, done.stderr
    assert "optuna-9.0.0.json: schema 7" in skipped[0]
    assert "optuna-9.1.0.json" in skipped[1]
    assert "Optuna 3.6.1" in (tmp_path / "report.md").read_text()


def test_committed_results_are_strict_json() -> None:
    """Every file under results/ parses without the NaN and Infinity extensions."""
    for path in sorted(RESULTS.glob("*.json")):
        json.loads(path.read_text(), parse_constant=_refuse)


def test_nonfinite_values_round_trip_as_tags() -> None:
    record = dataclasses.replace(
        _record(A, "", measured=True),
        search_space=[["x", [math.inf, -math.inf, math.nan, 1.0, "float"]]],
        trial_log=[{"params": {"x": -math.inf}}],
    )
    text = jsonfile.dumps(record.to_json())
    assert "Infinity" not in text
    assert "NaN" not in text
    back = RunRecord.from_json(json.loads(text, parse_constant=_refuse))
    values = back.search_space[0][1]
    assert values[:2] == [math.inf, -math.inf]
    assert math.isnan(values[2])
    assert values[3:] == [1.0, "float"]
    assert back.trial_log == record.trial_log
    with pytest.raises(ValueError, match="Out of range float"):
        jsonfile.dumps({"x": math.nan})
