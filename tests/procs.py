"""A `python -m repro` started in the background, for tests that inject faults while it
runs: its stderr is read line by line on a thread, and every wait on it is bounded."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .helpers import ROOT


class Repro:
    def __init__(
        self, *args: str, env: dict[str, str] | None = None, session: bool = False
    ) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "repro", *args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            start_new_session=session,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 120) -> str:
        """The first (further) stderr line containing ``text``; AssertionError when the
        process ends or ``timeout`` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout} s: {self.lines}") from None
            if line is None:
                raise AssertionError(f"exited before {text!r}: {''.join(self.lines)}")
            self.lines.append(line)
            if text in line:
                return line

    def finish(self, timeout: float = 120) -> int:
        """Exit status, after reading the rest of stderr."""
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        while (line := self._queue.get_nowait()) is not None:
            self.lines.append(line)
        return code

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def lane_pids(self) -> list[int]:
        """The lanes: the run's child processes (it forks nothing else while runs go on)."""
        return children(self.proc.pid)

    def kill(self) -> None:
        """Clean-up after a failed test: kill the run, if it is still there, and read it out."""
        if self.proc.poll() is None:
            self.proc.kill()
        if self.proc.stderr is not None and not self.proc.stderr.closed:
            self.finish(timeout=10)


def children(pid: int) -> list[int]:
    """``pid``'s child processes now; none once it has exited (a short-lived helper listed a
    moment earlier may be gone by the time its own children are read)."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def wait_empty(pgid: int, timeout: float = 5) -> list[int]:
    """``group_members(pgid)`` once it is empty, or after ``timeout``: a process SIGKILLed a
    moment ago may still be on its way out."""
    deadline = time.monotonic() + timeout
    while (members := group_members(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling /proc, bounded above
    return members


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def redis_server(tmp: Path, *options: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of our own on a free loopback port (no persistence), ready to use;
    ``options`` are more redis-server options (e.g. ``--maxclients 8``)."""
    import redis

    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
         "no", "--dir", str(tmp), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url, socket_connect_timeout=1).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)  # polling a server start-up, bounded above
        yield url, server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGKILL)
        server.wait(10)
