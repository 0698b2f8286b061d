"""Optuna's gRPC storage proxy (`python -m repro.scale`): the one-line errors for a release
without the proxy or without the scale extra, and a proxy server that the run starts on a free
loopback port and removes afterwards, interrupts included. Real processes, loopback only."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from repro import _compat
from repro.scale.extras import EXTRA
from repro.scale.proxy import listening
from tests.helpers import ROOT, run_cli

pytestmark = pytest.mark.xdist_group("processes")

PROXY_LINE = re.compile(r"proxy pid (\d+) on grpc://127\.0\.0\.1:(\d+)")
NOT_APPLICABLE = f"not applicable on Optuna {_compat.OPTUNA_VERSION} (from 4.2.0)"


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_missing_grpcio_names_the_extra_or_the_release_bound() -> None:
    """grpcio made unimportable (a None entry in sys.modules is how Python blocks an import):
    one line naming the extra, exit 2, within 10 s; a release without the proxy says so first,
    since no extra brings it."""
    began = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; sys.modules['grpc'] = None; from repro.scale.cli import main; "
            "sys.exit(main(['run', '-w', '2']))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert time.monotonic() - began < 10
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    if _compat.GRPC_PROXY:
        assert "needs grpcio" in lines[0]
        assert EXTRA in lines[0]
    else:
        assert NOT_APPLICABLE in lines[0]


@pytest.mark.skipif(
    not _compat.GRPC_PROXY, reason=f"grpc storage: {NOT_APPLICABLE} (see the test above)"
)
def test_proxy_runs_the_workers_and_leaves_nothing_listening() -> None:
    """Two workers through a proxy in front of SQLite; afterwards the server process is gone
    and nothing listens on its port."""
    result = run_cli("run", "--backend", "sqlite", "-w", "2", module="repro.scale", timeout=120)
    assert result.returncode == 0, result.stderr
    match = PROXY_LINE.search(result.stderr)
    assert match, result.stderr
    assert re.search(r"r0: \d+ of 24 points lost, \d+ extra evaluations", result.stdout)
    assert gone(int(match[1]))
    assert not listening(int(match[2]))


@pytest.mark.skipif(
    not _compat.GRPC_PROXY, reason=f"grpc storage: {NOT_APPLICABLE} (see the first test)"
)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_stops_the_proxy(signum: signal.Signals) -> None:
    """A signal while the workers run: the run exits 128 + signum within 10 s and its proxy
    server is gone, its port closed."""
    with subprocess.Popen(
        [sys.executable, "-m", "repro.scale", "run", "-w", "2", "-r", "50"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stderr is not None
            line = child.stderr.readline()
            match = PROXY_LINE.search(line)
            assert match, line
            child.send_signal(signum)
            assert child.wait(10) == 128 + signum
            assert gone(int(match[1]))
            assert not listening(int(match[2]))
        finally:
            if child.poll() is None:
                child.kill()
