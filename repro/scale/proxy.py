"""Optuna's gRPC storage proxy server in a process of its own, on a free loopback port,
started and stopped by the run: ``serving`` is a context manager whose ``finally`` stops the
server, interrupts included; the server also dies with the run's process if that is killed.

``python -m repro.scale.proxy KIND LOCATION PORT PARENT_PID THREADS`` is the server process."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from repro.fork import STOP_SIGNALS
from repro.scale.extras import require_grpc
from repro.scale.limits import proxy_pool, proxy_threads
from repro.storages import StorageError, StorageSpec, open_storage

HOST = "127.0.0.1"
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
# Linux's prctl option that sends the child a signal when its parent dies.
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Proxy:
    pid: int
    port: int

    @property
    def spec(self) -> StorageSpec:
        """What a worker opens: the proxy's client."""
        return StorageSpec("grpc", f"grpc://{HOST}:{self.port}", schema_ready=True)


def free_port() -> int:
    """A loopback port nothing listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on the loopback ``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((HOST, port)) == 0


@contextmanager
def serving(
    backend: StorageSpec, timeout: float = READY_TIMEOUT, workers: int = 1
) -> Iterator[Proxy]:
    """Serve ``backend`` through the proxy for the ``with`` block, with a thread (and a
    database connection) for each of ``workers`` at once (``limits.proxy_threads``)."""
    require_grpc()
    port = free_port()
    # The server's process finds the harness where this one does, whatever the working folder.
    root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "repro.scale.proxy", backend.kind, backend.location]
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(
            [*command, str(port), str(os.getpid()), str(proxy_threads(workers))],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
        try:
            _wait_ready(child, port, log, timeout, backend)
            yield Proxy(child.pid, port)
        finally:
            _stop(child)


def _wait_ready(
    child: subprocess.Popen[bytes], port: int, log: IO[bytes], timeout: float, backend: StorageSpec
) -> None:
    deadline = time.monotonic() + timeout
    while not listening(port):
        if child.poll() is not None:
            log.seek(0)
            lines = log.read().decode(errors="replace").strip().splitlines()
            raise StorageError(
                f"gRPC proxy for {backend.redacted} exited with status {child.returncode}: "
                f"{lines[-1] if lines else 'no output'}"
            )
        if time.monotonic() > deadline:
            raise StorageError(
                f"gRPC proxy for {backend.redacted} did not listen on {HOST}:{port} "
                f"within {timeout:g} s"
            )
        with suppress(subprocess.TimeoutExpired):
            child.wait(0.05)


def _stop(child: subprocess.Popen[bytes]) -> None:
    """Stop the server; a second Ctrl-C waits until it is gone, so that none is left behind."""
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _serve(kind: str, location: str, port: int, parent: int, threads: int) -> None:
    from repro import _compat

    # The run stops this process with SIGTERM (which the run may have been ignoring when it
    # started this one: ignored signals survive exec); a Ctrl-C at the terminal reaches the
    # run, which does. Killed with the run: the server holds nothing that needs a goodbye.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        return  # the run died before the line above took effect
    _compat.quiet_optuna()
    storage = open_storage(StorageSpec(kind, location))
    # Optuna's own pools where they suffice, so that a small run is served as a user's is.
    pool = proxy_pool(threads) if threads > proxy_threads(1) else None
    _compat.serve_grpc_proxy(storage, HOST, port, threads, pool)


if __name__ == "__main__":
    _serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
