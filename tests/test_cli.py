"""The command line: bad input gets one actionable line and a non-zero exit, runs write results
without losing earlier ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro import _compat
from repro.results import RunRecord
from repro.scenarios import UPSTREAM, space_digest, validate_space

from .helpers import run_cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--bogus"], "unrecognized arguments: --bogus"),
        (["run", "-r", "0"], "0 must be at least 1"),
        (["run", "--space", "{nope"], "search space is not JSON"),
        (["run", "--space", '{"x": 3}'], "parameter 'x' needs a non-empty list"),
        (["run", "-s", "no-such-scenario"], "no scenario matches 'no-such-scenario'"),
        (["run", "--storage", "oracle"], "invalid choice: 'oracle'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr
    # One prefix for argparse's usage errors and the commands' own errors alike.
    assert done.stderr.startswith("python -m repro: error: "), done.stderr


def test_report_without_results_says_what_to_run(tmp_path: Path) -> None:
    """Nothing to render is bad input: one line with the command prefix, exit 2, nothing
    written."""
    done = run_cli("report", "--results", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.startswith("python -m repro: error: no optuna-*.json in ")
    assert "nox -s repro" in done.stderr
    assert done.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_output_into_a_closed_pipe_ends_quietly() -> None:
    """`python -m repro list | head -1`: the reader goes away; the command stops without a
    BrokenPipeError traceback, with the status a shell gives a tool stopped by SIGPIPE. The
    read end is closed before the command writes, so every write meets the closed pipe."""
    import os
    import subprocess
    import sys

    from .helpers import ROOT

    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "repro", "list"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141


def test_run_says_when_what_runs_differs_from_what_was_typed() -> None:
    """-r on a scenario whose outcome the code forces runs it --forced-runs times, and a -s
    pattern also matches the remedy scenarios: each is one line before the run starts."""
    from repro import cli, expectations

    def notes(*argv: str) -> list[str]:
        args = cli.build_parser().parse_args(["run", *argv])
        typed = args.repetitions is not None
        args.repetitions = args.repetitions or cli.DEFAULT_REPETITIONS
        scenarios = cli._scenarios(args)
        runs_each = {
            s.id: expectations.runs_needed(
                _compat.OPTUNA_VERSION, s, args.repetitions, args.forced_runs
            )
            for s in scenarios
        }
        return cli._differs_from_typed(args, typed, scenarios, runs_each)

    forced = notes("-s", UPSTREAM.id, "-r", "5")
    assert len(forced) == 1
    assert "run 1 time(s) each, not -r 5" in forced[0]
    assert notes("-s", UPSTREAM.id) == []
    (matched,) = notes("-s", "sequential-none-sqlite-*", "--forced-runs", "2", "-r", "2")
    chosen = cli._scenarios(
        cli.build_parser().parse_args(["run", "-s", "sequential-none-sqlite-*"])
    )
    remedies = [s for s in chosen if s.remedy != "grid"]
    assert remedies, "the default remedies have a sequential-none-sqlite scenario"
    assert matched.startswith(f"note: -s also matched {len(remedies)} remedy scenarios")
    assert notes("-s", "sequential-none-sqlite-*", "--remedies", "none") == []


@pytest.mark.xdist_group("processes")
def test_verdict_runs_the_5489_pattern_alone_and_prints_its_verdict(tmp_path: Path) -> None:
    """What `nox -s repro` runs first for every version: one forced run of the #5489 pattern,
    kept in the results file like any run, and the verdict line."""
    done = run_cli("run", "--verdict", "-q", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    data = json.loads((tmp_path / f"optuna-{_compat.OPTUNA_VERSION}.json").read_text())
    assert [(r["scenario"], r["repetition"]) for r in data["runs"]] == [(UPSTREAM.id, 0)]
    verdicts = [line for line in done.stderr.splitlines() if line.startswith("#5489 verdict")]
    assert len(verdicts) == 1, done.stderr
    assert f"Optuna {_compat.OPTUNA_VERSION}: " in verdicts[0]


@pytest.mark.parametrize(
    "chosen", [["-s", "threads-*"], ["--workers", "2"], ["--storage", "journal"]]
)
def test_verdict_runs_nothing_when_the_options_leave_out_the_5489_pattern(
    tmp_path: Path, chosen: list[str]
) -> None:
    """`nox -s repro -- OPTIONS` hands the options to the verdict pass too: a run shaped
    without the #5489 pattern has no verdict to print, and writes nothing."""
    done = run_cli("run", "--verdict", "--out", str(tmp_path), *chosen)
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"no #5489 pattern ({UPSTREAM.id}) among the chosen scenarios\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.xdist_group("processes")
def test_run_writes_results_and_keeps_other_scenarios(tmp_path: Path) -> None:
    """A second run of other scenarios adds to the file instead of replacing it."""
    space = '{"x": [0, 1, 2, 3]}'
    base = ["run", "--out", str(tmp_path), "--space", space, "--workers", "2", "-r", "1", "-q"]
    first = run_cli(*base, "-s", "sequential-none-journal-*")
    assert first.returncode == 0, first.stderr
    second = run_cli(*base, "-s", "threads-none-journal-*")
    assert second.returncode == 0, second.stderr
    data = json.loads((tmp_path / f"optuna-{_compat.OPTUNA_VERSION}.json").read_text())
    digest = space_digest(validate_space(json.loads(space)))
    assert sorted(r["scenario"] for r in data["runs"]) == [
        f"sequential-none-journal-w2-custom-{digest}",
        f"threads-none-journal-w2-custom-{digest}",
    ]
    assert data["optuna_version"] == _compat.OPTUNA_VERSION


@pytest.mark.xdist_group("processes")
def test_a_failing_run_is_recorded_and_exits_1(tmp_path: Path) -> None:
    """A run that passes its timeout becomes a record with the error; the file is still
    written. 1 ms cannot fit a fork plus study creation, so the timeout always fires."""
    done = run_cli(
        "run",
        "--out",
        str(tmp_path),
        "-s",
        "sequential-none-journal-*",
        "--forced-runs",
        "2",
        "--timeout",
        "0.001",
        "-q",
        "-j",
        "1",
    )
    assert done.returncode == 1
    assert "ERROR: sequential-none-journal" in done.stderr
    data = json.loads((tmp_path / f"optuna-{_compat.OPTUNA_VERSION}.json").read_text())
    assert len(data["runs"]) == 2
    assert all("timed out" in r["error"] for r in data["runs"])


def test_a_corrupt_results_file_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / f"optuna-{_compat.OPTUNA_VERSION}.json"
    path.write_text("{not json")
    done = run_cli("run", "--out", str(tmp_path), "-s", "threads-none-journal-*", "-r", "1")
    assert done.returncode == 2
    assert f"{path}: not JSON" in done.stderr
    assert path.read_text() == "{not json"


def test_help_documents_every_run_option() -> None:
    done = run_cli("run", "--help")
    for option in (
        "--scenario",
        "--repetitions",
        "--storage",
        "--space",
        "--workers",
        "--trials-per-worker",
        "--jobs",
        "--timeout",
        "--out",
        "--quiet",
    ):
        assert option in done.stdout


DEAD_POSTGRES = {"REPRO_POSTGRESQL_URL": "postgresql+psycopg2://u:pw@127.0.0.1:1/x"}


@pytest.mark.xdist_group("processes")
def test_unreachable_default_server_is_skipped_out_of_ci_with_a_line(tmp_path: Path) -> None:
    done = run_cli(
        "run",
        "--out",
        str(tmp_path),
        "-s",
        "threads-none-[jp]*",
        "-r",
        "1",
        "-q",
        env={**DEAD_POSTGRES, "CI": None, "REPRO_REQUIRE_SERVICES": None},
    )
    assert done.returncode == 0, done.stderr
    assert "skipped postgresql scenarios: cannot use postgresql+psycopg2://u:***@127.0.0.1:1/x" in (
        done.stderr
    )
    data = json.loads((tmp_path / f"optuna-{_compat.OPTUNA_VERSION}.json").read_text())
    assert [r["storage"] for r in data["runs"]] == ["journal"]


@pytest.mark.parametrize(
    ("extra", "env"),
    [
        (["--storage", "postgresql"], {"CI": None, "REPRO_REQUIRE_SERVICES": None}),
        ([], {"CI": "true"}),
        # Chosen only through -s: the earlier code skipped it and ran nothing, with exit 0.
        (["-s", "*-postgresql-*"], {"CI": None, "REPRO_REQUIRE_SERVICES": None}),
    ],
)
def test_unreachable_server_is_an_error_when_asked_for_or_in_ci(
    tmp_path: Path, extra: list[str], env: dict[str, str | None]
) -> None:
    """Fails before any run, with one line naming the redacted URL and the cause."""
    done = run_cli(
        "run", "--out", str(tmp_path), "-s", "threads-none-*", *extra, env={**DEAD_POSTGRES, **env}
    )
    assert done.returncode == 2
    assert done.stderr.startswith(
        "python -m repro: error: cannot use postgresql+psycopg2://u:***@127.0.0.1:1/x"
    )
    assert done.stderr.count("\n") == 1
    assert not list(tmp_path.iterdir())


@pytest.mark.xdist_group("processes")
def test_collect_prints_the_run_record_of_the_study(tmp_path: Path) -> None:
    """`worker` prints its WorkerResult; `collect` prints the run record of the study in the
    shape `run` writes (RunRecord reads it back unchanged), plus what only it knows: the
    study's name and the worker indexes that two processes used. One worker of four ran its
    six trials, each on a point of its own (forced: one sampler never repeats a point)."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    scenario = "sequential-none-sqlite-w4-g24"
    worker = run_cli(
        "worker", "--storage", storage, "--study", "s", "--scenario", scenario,
        "--worker-index", "1",
    )  # fmt: skip
    assert worker.returncode == 0, worker.stderr
    result = json.loads(worker.stdout)
    assert (result["index"], result["error"]) == (1, None)
    done = run_cli("collect", "--storage", storage, "--study", "s")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    record = RunRecord.from_json(printed)
    only_collect = {"study": "s", "reused_worker_indexes": {}}
    assert printed == {**record.to_json(), **only_collect}
    assert (record.scenario, record.storage, record.study_name) == (scenario, "sqlite", "s")
    assert (record.trials, record.complete, record.distinct) == (6, 6, 6)
    assert (record.missing, record.duplicates, record.error) == (18, 0, None)
    assert {t["worker"] for t in record.trial_log} == {1}
    assert (
        "6 complete trials; 18 grid points never evaluated, 0 points evaluated more than once "
        "(0 extra evaluations)"
    ) in done.stderr
    listed = next(line for line in done.stderr.splitlines() if "never evaluated: " in line)
    assert listed.count('{"x": ') == 18
