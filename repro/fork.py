"""Forked children that return plain data through a pipe. An exception in the child becomes
its traceback text; a crash or a timeout becomes ``ChildFailed`` naming the cause.

No Optuna here: the server checks and the lanes use these helpers without importing it.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

CTX = multiprocessing.get_context("fork")


class ChildFailed(RuntimeError):
    """A child raised, crashed or timed out; the message carries its traceback or exit code."""


def _child_main(conn: Connection, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        conn.send(("ok", fn(*args)))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def describe_exit(exitcode: int | None) -> str:
    """``with exit code 3`` or ``from SIGKILL``, for a finished process's exit code."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"from {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"from signal {-exitcode}"
    return f"with exit code {exitcode}"


class Child:
    """One forked process running ``fn(*args)``."""

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "worker") -> None:
        self.name = name
        self._recv, send = CTX.Pipe(duplex=False)
        self.process = CTX.Process(target=_child_main, args=(send, fn, args))
        self.process.start()
        send.close()

    def result(self, deadline: float) -> Any:
        """The child's return value; ChildFailed if it raised, died or passed ``deadline``
        (a ``time.monotonic()`` value)."""
        try:
            remaining = max(0.0, deadline - time.monotonic())
            if not self._recv.poll(remaining):
                self.kill()
                raise ChildFailed(
                    f"{self.name} pid {self.process.pid} timed out (no result within the run "
                    "timeout)"
                )
            try:
                status, payload = self._recv.recv()
            except EOFError:
                self.process.join(5)
                raise ChildFailed(
                    f"{self.name} pid {self.process.pid} died "
                    f"{describe_exit(self.process.exitcode)} before returning a result"
                ) from None
            self.process.join(max(0.0, deadline - time.monotonic()))
            if status == "error":
                raise ChildFailed(payload)
            return payload
        finally:
            self._recv.close()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)


def call(fn: Callable[..., Any], *args: Any, timeout: float) -> Any:
    """Run ``fn(*args)`` in a forked child and return its result: the parent never opens a
    storage, so no connection pool is ever shared across a fork."""
    return Child(fn, *args, name="helper").result(time.monotonic() + timeout)
