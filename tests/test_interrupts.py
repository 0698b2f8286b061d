"""SIGINT and SIGTERM, to the run alone or to its whole process group: it stops within 5 s,
keeps every finished run, removes the storages of the runs under way, leaves no process
behind and exits 128 + the signal number."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repro import _compat, results

from .helpers import ROOT
from .procs import Repro, wait_empty
from .test_durability import printed_runs, results_file

pytestmark = pytest.mark.xdist_group("processes")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("target", ["parent", "group"])
def test_interrupt_keeps_finished_runs_and_leaves_nothing(
    tmp_path: Path, signum: signal.Signals, target: str
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    out = tmp_path / "out"
    run = Repro(
        "run", "--out", str(out), "-s", "sequential-none-journal-*", "--forced-runs", "6",
        env={"REPRO_TMPDIR": str(scratch)}, session=True,
    )  # fmt: skip
    try:
        run.wait_for("/6] ")
        lanes = os.getpgid(run.lane_pids()[0])
        sent = time.monotonic()
        if target == "parent":
            os.kill(run.proc.pid, signum)
        else:
            os.killpg(run.proc.pid, signum)  # its own session: the group a terminal signals
        code = run.finish(timeout=30)
        stopped = time.monotonic() - sent
    finally:
        run.kill()
    assert code == 128 + signum, run.stderr
    assert stopped < 5, f"took {stopped:.1f} s to stop"
    assert f"interrupted by {signum.name}" in run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    kept = {(r["scenario"], r["repetition"]): r for r in results_file(out)["runs"]}
    assert printed_runs(run.lines) <= set(kept)
    assert len(kept) < 6, "every run finished before the signal"
    assert all(r["error"] is None for r in kept.values())
    assert wait_empty(lanes) == []
    assert list(scratch.glob("grid-repro-*")) == [], run.stderr
    assert list(out.glob("*.log.jsonl")) == []
    assert results.load(out / f"optuna-{_compat.OPTUNA_VERSION}.json").run_count == len(kept)


# A process whose finalizer receives SIGTERM: the handler's Interrupted cannot leave the
# finalizer; it must not be printed, and check_interrupted must raise it after.
SIGNAL_IN_FINALIZER = """
import gc, os, signal, sys
from repro.fork import Interrupted, check_interrupted, raise_on_signals

class Finalized:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # bytecodes, so that the handler runs here, inside __del__
            pass

raise_on_signals()
Finalized()
gc.collect()
try:
    check_interrupted()
except Interrupted as exc:
    sys.exit(f"raised after the finalizer: {exc}")
"""


def test_a_signal_in_a_finalizer_is_raised_after_it_without_a_traceback() -> None:
    """A real SIGTERM that lands in a ``__del__`` (as in a garbage-collected Connection):
    no "Exception ignored" traceback, and the interrupt is raised once the finalizer ends."""
    done = subprocess.run(
        [sys.executable, "-c", SIGNAL_IN_FINALIZER],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == "raised after the finalizer: interrupted by SIGTERM", done.stderr
