"""Evidence, second pass: a failed run never replaces a measured one, runs of overlapping
invocations are both kept, and every fault ends in one line and a documented exit status.
Real processes, real signals, servers of the test's own on loopback ports, and a real full
filesystem (a 2 MB tmpfs; skipped, saying so, where this machine does not let us mount)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from repro import _compat, results, services
from repro.jsonfile import FormatError
from repro.results import REPLACEMENT_RULE
from repro.versions import version_key

from .helpers import RESULTS, ROOT, require_service, run_cli
from .procs import Repro, children, redis_server
from .test_durability import NO_REMEDIES, SMALL, printed_runs, results_file

# Tests that fork workers share one xdist group, and those on servers another (tests/README).
processes = pytest.mark.xdist_group("processes")
servers = pytest.mark.xdist_group("servers")

VERSION = _compat.OPTUNA_VERSION
# A committed results file, as a file of earlier runs (of any release: the installed one,
# e.g. a new latest, may have none yet).
COMMITTED = max(RESULTS.glob("optuna-*.json"), key=lambda p: version_key(p.stem[7:]))
JOURNAL = ["-s", "sequential-none-journal-*", *NO_REMEDIES]


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


def one_line_fault(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert "KeyboardInterrupt" not in stderr, stderr


@contextlib.contextmanager
def mounted(folder: Path, *options: str) -> Iterator[Path]:
    """A tmpfs (or a bind mount, with ``bind``) at ``folder``, unmounted at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    if "bind" in options:
        command = ["mount", "--bind", str(folder), str(folder)]
    else:
        command = ["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)]
    made = subprocess.run(command, capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount here ({made.stderr.strip()}): no real full or read-only disk")
    try:
        if "bind" in options:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path, leave_kb: int) -> None:
    """Fill the filesystem of ``folder`` until ``leave_kb`` KB are left."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 65536)
    finally:
        os.close(fd)
    os.truncate(filler, max(0, filler.stat().st_size - leave_kb * 1024))


def by_invocation(out: Path) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for run in results_file(out)["runs"]:
        found.setdefault(run.get("invocation", ""), []).append(run)
    return found


def test_the_replacement_rule_is_stated_once_in_help_and_docs() -> None:
    """One paragraph, in the code, printed by `run --help` and quoted by docs/faults.md."""
    words = " ".join(REPLACEMENT_RULE.split())
    help_text = run_cli("run", "--help").stdout
    assert words in " ".join(help_text.split())
    assert words in " ".join((ROOT / "docs" / "faults.md").read_text().split())


@servers
def test_an_outage_keeps_every_measured_run(tmp_path: Path) -> None:
    """Two runs of the Redis scenarios into one folder; the second one's Redis (our own) is
    killed after its first result. Every run the first measured stays, the second's measured
    runs are added, and its failed runs are kept beside them as errors."""
    base = ["run", "--out", str(tmp_path), "--storage", "redis", "-s", "sequential-*", "-j", "1",
            "-r", "2", "--forced-runs", "2", *NO_REMEDIES, *SMALL]  # fmt: skip
    with redis_server(tmp_path) as (url, _):
        first = run_cli(*base, env={"REPRO_REDIS_URL": url})
    assert first.returncode == 0, first.stderr
    measured = results_file(tmp_path)["runs"]
    assert len(measured) == 6
    assert all(r["error"] is None for r in measured)
    with redis_server(tmp_path) as (url, server):
        second = Repro(*base, env={"REPRO_REDIS_URL": url})
        try:
            second.wait_for("[1/6]")
            server.send_signal(signal.SIGKILL)
            server.wait(10)
            assert second.finish() == 1, second.stderr
        finally:
            second.kill()
    one_line_fault(second.stderr)
    groups = by_invocation(tmp_path)
    assert len(groups) == 2
    assert groups.pop(measured[0]["invocation"]) == measured
    (fresh,) = groups.values()
    assert len(fresh) == 6
    assert any(r["error"] for r in fresh), "the outage failed no run"
    summary = results_file(tmp_path)["summary"]
    assert sum(s["errors"] for s in summary) == sum(1 for r in fresh if r["error"])
    assert sum(s["runs"] for s in summary) == 6 + sum(1 for r in fresh if r["error"] is None)


@processes
def test_runs_cut_short_by_a_full_scratch_disk_are_errors_beside_the_measured_ones(
    tmp_path: Path,
) -> None:
    """REPRO_TMPDIR on a 2 MB tmpfs with 8 KB left: the journal runs stop partway. The
    complete runs stay; the cut ones are kept with their partial trials, as errors, and no
    summary counts their missing points."""
    base = ["run", "--out", str(tmp_path / "out"), *JOURNAL, "--forced-runs", "2", "-j", "1"]
    assert run_cli(*base).returncode == 0
    complete = results_file(tmp_path / "out")["runs"]
    with mounted(tmp_path / "full", "size=2m") as full:
        fill(full, leave_kb=8)
        cut = run_cli(*base, env={"REPRO_TMPDIR": str(full)})
    assert cut.returncode == 1, cut.stderr
    one_line_fault(cut.stderr)
    data = results_file(tmp_path / "out")
    runs = data["runs"]
    assert [r for r in runs if r["error"] is None] == complete
    failed = [r for r in runs if r["error"]]
    assert len(failed) == 2, cut.stderr
    assert any("No space left on device" in r["error"] for r in failed), failed
    (summary,) = data["summary"]
    assert (summary["runs"], summary["errors"]) == (2, 2)
    assert summary["missing_max"] == max(r["missing"] for r in complete)


@processes
def test_a_full_disk_under_out_is_one_line_and_keeps_the_file(tmp_path: Path) -> None:
    """--out on a full tmpfs: refused before the first run (no room for the log); with room
    for the log but not for the results file, the log stays and the next report folds it."""
    with mounted(tmp_path / "out", "size=2m") as out:
        path = results.results_path(out, VERSION)
        earlier = results.load(COMMITTED)
        results.save(
            path, dataclasses.replace(earlier, optuna_version=VERSION, runs=earlier.runs[:40])
        )
        before = path.read_bytes()
        fill(out, leave_kb=0)
        refused = run_cli("run", "--out", str(out), *JOURNAL, "-r", "1", *SMALL)
        assert refused.returncode == 3, refused.stderr
        one_line_fault(refused.stderr)
        assert "No space left on device" in last_line(refused.stderr)
        assert "nothing ran, nothing written" in last_line(refused.stderr)
        assert path.read_bytes() == before
        # Room for the log and a run, not for a second copy of the results file.
        fill(out, leave_kb=len(before) // 1024 // 2)
        stuck = run_cli("run", "--out", str(out), *JOURNAL, "-r", "1", *SMALL)
        assert stuck.returncode == 3, stuck.stderr
        one_line_fault(stuck.stderr)
        assert "stay in optuna-" in last_line(stuck.stderr), stuck.stderr
        assert path.read_bytes() == before
        (log,) = out.glob("*.log.jsonl")
        (out / "filler").unlink()
        folded = run_cli("report", "--results", str(out), "--out", str(tmp_path / "report.md"))
        assert folded.returncode == 0, folded.stderr
        assert not log.exists()
        assert results.load(path).run_count == 41


@processes
def test_two_identical_runs_that_overlap_are_both_kept(tmp_path: Path) -> None:
    """The same scenarios twice at once into one folder (A held with SIGSTOP until B has
    started): neither replaces the other, and the header describes both. (That a later
    invocation that measured every run replaces both is test_durability's merge rule.)"""
    # A custom shape runs -r times (--forced-runs is for the default grid).
    base = ["run", "--out", str(tmp_path), *JOURNAL, "-r", "2", *SMALL]
    first = Repro(*base)
    try:
        first.wait_for(" lanes")
        os.kill(first.proc.pid, signal.SIGSTOP)
        second = Repro(*base)
        second.wait_for(" lanes")
        os.kill(first.proc.pid, signal.SIGCONT)
        assert first.finish() == 0, first.stderr
        assert second.finish() == 0, second.stderr
    finally:
        first.kill()
    groups = by_invocation(tmp_path)
    assert sorted(len(g) for g in groups.values()) == [2, 2]
    header = results_file(tmp_path)
    assert len(header["invocations"]) == 2
    assert header["repetitions"] == 2


@processes
def test_a_dropped_dead_log_leaves_the_file_as_it_is(tmp_path: Path) -> None:
    """A run killed while a later run measured the same scenario to the end: when its log is
    folded (after its death), every run of it is dropped, and the file, header fields
    included, stays exactly as it was."""
    path = results.results_path(tmp_path, VERSION)
    scenario = "sequential-none-sqlite-w4-g24"
    committed = results.load(COMMITTED)
    run = next(r for r in committed.runs if r.scenario == scenario)
    # This process is the run that will be killed: its log is held open while the next
    # run starts, measures and folds.
    journal = results.Journal.start(tmp_path, VERSION, {"command": "killed later"})
    journal.append(run)
    later = run_cli("run", "--out", str(tmp_path), "-s", scenario, *NO_REMEDIES, "-r", "1")
    assert later.returncode == 0, later.stderr
    before = path.read_bytes()
    journal.close()  # as a SIGKILL leaves it: no process holds the log any more
    assert results.recover(tmp_path) == [VERSION]
    assert path.read_bytes() == before
    assert not journal.path.exists()
    assert "killed later" not in before.decode()


@processes
@pytest.mark.parametrize("when", ["checking servers", "no run finished"])
def test_sigint_before_the_first_run_writes_nothing_and_says_so(tmp_path: Path, when: str) -> None:
    """Ctrl-C while `run` checks a server that does not answer (our own silent loopback
    port), or after the log exists but before any run finished."""
    out = tmp_path / "out"
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        if when == "checking servers":
            args = ["--storage", "redis", *SMALL]
        else:
            args = ["-s", "concurrent-none-sqlite-*", *NO_REMEDIES, "-r", "1"]
        run = Repro("run", "--out", str(out), *args, env={"REPRO_REDIS_URL": url})
        try:
            if when == "checking servers":
                silent.settimeout(60)
                silent.accept()[0].close()
            else:
                run.wait_for(" lanes")
            run.proc.send_signal(signal.SIGINT)
            code = run.finish(timeout=30)
        finally:
            run.kill()
    assert code == 130, run.stderr
    one_line_fault(run.stderr)
    if printed_runs(run.lines):
        pytest.fail(f"a run finished before the signal; the test's window was missed: {run.stderr}")
    assert "nothing written" in last_line(run.stderr), run.stderr
    assert not results.results_path(out, VERSION).exists()
    assert not list(out.glob("*.log.jsonl")) if out.exists() else True


@processes
def test_a_storm_of_sigints_ends_in_one_line_and_keeps_the_finished_runs(tmp_path: Path) -> None:
    """SIGINT after the first result, then SIGINT again every 20 ms until the run exits:
    some of them land in the teardown and the final write, which must finish anyway."""
    run = Repro("run", "--out", str(tmp_path), *JOURNAL, "--forced-runs", "6")
    try:
        run.wait_for("/6] ")
        while run.proc.poll() is None:
            run.proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                run.proc.wait(0.02)
        code = run.finish(timeout=30)
    finally:
        run.kill()
    assert code == 130, run.stderr
    one_line_fault(run.stderr)
    assert "interrupted by SIGINT" in last_line(run.stderr)
    kept = {(r["scenario"], r["repetition"]) for r in results_file(tmp_path)["runs"]}
    assert printed_runs(run.lines) <= kept
    assert not list(tmp_path.glob("*.log.jsonl"))


@processes
def test_a_field_of_the_wrong_type_is_refused_before_any_run(tmp_path: Path) -> None:
    """A file that parses but holds a field of the wrong type: `run` refuses it before any
    run and `report` skips it, each in one line naming the file and the field."""
    data = json.loads(COMMITTED.read_text())
    path = results.results_path(tmp_path, VERSION)
    for field, value in [("trial_log", {"x": 1}), ("repetition", None), ("missing", "3")]:
        doctored = json.loads(json.dumps(data))
        doctored["runs"][3][field] = value
        path.write_text(json.dumps(doctored))
        with pytest.raises(FormatError, match=f"field {field!r}"):
            results.load(path)
    before = path.read_bytes()
    refused = run_cli("run", "--out", str(tmp_path), *JOURNAL, "-r", "1", *SMALL)
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.count("\n") == 1, refused.stderr
    assert "field 'missing'" in refused.stderr
    assert str(path) in refused.stderr
    report = run_cli("report", "--results", str(tmp_path))
    assert report.returncode == 2, report.stderr
    one_line_fault(report.stderr)
    assert f"skipped {path}" in report.stderr
    assert path.read_bytes() == before


@processes
def test_report_into_a_folder_it_cannot_write(tmp_path: Path) -> None:
    """A read-only bind mount (we are root: permissions alone would not stop us)."""
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / COMMITTED.name).write_bytes(COMMITTED.read_bytes())
    with mounted(folder, "bind"):
        done = run_cli("report", "--results", str(folder))
    assert done.returncode == 3, done.stderr
    one_line_fault(done.stderr)
    assert "Read-only file system" in last_line(done.stderr)
    assert "unchanged" in last_line(done.stderr)
    assert sorted(p.name for p in folder.iterdir()) == [COMMITTED.name]


@processes
def test_a_stopped_worker_is_named_by_index_and_pid(tmp_path: Path) -> None:
    """SIGSTOP to one of four concurrent workers: the run ends at its timeout, and its
    error's last line (the one the summary prints) names that worker and its pid."""
    run = Repro("run", "--out", str(tmp_path), "-s", "concurrent-none-sqlite-*", *NO_REMEDIES,
                "-r", "1", "-j", "1", "--timeout", "5")  # fmt: skip
    try:
        run.wait_for(" lanes")
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while len(workers) < 4 and time.monotonic() < deadline:
            workers = sorted(p for lane in run.lane_pids() for p in children(lane))
            time.sleep(0.002)  # polling /proc for the workers' fork, bounded above
        assert len(workers) == 4, workers
        # Forked one after another by one lane: pid order is index order.
        os.kill(workers[2], signal.SIGSTOP)
        assert run.finish() == 1, run.stderr
    finally:
        run.kill()
    (record,) = results_file(tmp_path)["runs"]
    named = f"worker 2: hung (stopped by a signal): pid {workers[2]}"
    assert last_line(record["error"]).startswith(named), record["error"]
    assert named in run.stderr


@servers
def test_workers_times_lanes_must_fit_the_servers_connection_limit(tmp_path: Path) -> None:
    """Our own Redis with maxclients 8: 2 lanes x (4 workers + 1) do not fit, one lane
    would (the advice). And this machine's PostgreSQL: 64 workers x 2 lanes exceed max_connections.
    Refused before the first run, naming the limit and what fits."""
    with redis_server(tmp_path, "--maxclients", "8") as (url, _):
        base = ["run", "--out", str(tmp_path), "--storage", "redis", "-s", "sequential-none-*",
                *NO_REMEDIES, "-r", "2", *SMALL[:2], "--workers", "4"]  # fmt: skip
        refused = run_cli(*base, "-j", "2", env={"REPRO_REDIS_URL": url})
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert "maxclients 8" in refused.stderr
        assert "use -j 1" in refused.stderr
    # A server that will not say its limit (CONFIG disabled, as on managed Redis): said, and run.
    with redis_server(tmp_path, "--rename-command", "CONFIG", "") as (url, _):
        unknown = run_cli(*base, "-j", "1", "-r", "1", env={"REPRO_REDIS_URL": url})
        assert unknown.returncode == 0, unknown.stderr
        assert "connections not checked: cannot read the connection limit" in unknown.stderr
    require_service("postgresql")
    space = json.dumps({"x": list(range(64))})
    too_many = run_cli(
        "run", "--out", str(tmp_path), "--storage", "postgresql", "-s", "concurrent-none-*",
        *NO_REMEDIES, "--space", space, "--workers", "64",
    )  # fmt: skip
    assert too_many.returncode == 2, too_many.stderr
    assert "max_connections" in too_many.stderr
    assert "--workers" in too_many.stderr
    assert "[1/" not in too_many.stderr


@servers
def test_clean_does_not_list_a_live_runs_databases(tmp_path: Path) -> None:
    """A run on PostgreSQL held (SIGSTOP) after its first result, its shared database still
    there: the dry run of `clean` does not list what that live run holds, and says so."""
    require_service("postgresql")
    run = Repro("run", "--out", str(tmp_path), "--storage", "postgresql", "-s",
                "sequential-none-*", *NO_REMEDIES, "-r", "2", *SMALL)  # fmt: skip
    try:
        run.wait_for("[1/2]")
        os.kill(run.proc.pid, signal.SIGSTOP)
        holding = [
            n for n in services.leftovers("postgresql") if services.owner_of(n) == run.proc.pid
        ]
        dry = run_cli("clean")
        os.kill(run.proc.pid, signal.SIGCONT)
        assert run.finish() == 0, run.stderr
    finally:
        if run.proc.poll() is None:
            os.kill(run.proc.pid, signal.SIGCONT)
        run.kill()
    assert holding, "the run held no database while clean looked"
    assert dry.returncode == 0, dry.stderr
    assert not any(str(run.proc.pid) in line for line in dry.stdout.splitlines()), dry.stdout
    (line,) = [line for line in dry.stderr.splitlines() if "in use by live processes" in line]
    assert str(run.proc.pid) in line
