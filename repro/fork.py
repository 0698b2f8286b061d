"""Forked children that return plain data through a pipe. An exception in the child becomes
its traceback text; a crash or a timeout becomes ``ChildFailed`` naming the cause.

No Optuna here: the server checks and the lanes use these helpers without importing it.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType
from typing import Any

from repro.paths import relativize

CTX = multiprocessing.get_context("fork")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ChildFailed(RuntimeError):
    """A child raised, crashed or timed out; the message carries its traceback or exit code."""


class ChildTimedOut(ChildFailed):
    """A child gave no result by its deadline (it was killed then); ``stopped``: it was
    stopped by a signal (SIGSTOP, a debugger) when the deadline came."""

    def __init__(self, message: str, stopped: bool) -> None:
        super().__init__(message)
        self.stopped = stopped


def stopped(pid: int | None) -> bool:
    """Whether process ``pid`` is stopped (state T or t in /proc)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("T", "t")


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; a BaseException so that no ``except Exception`` swallows it,
    while every ``with`` block on the way out still tears its storage down."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


_received: list[int] = []


def _quiet_unraisable(unraisable: Any) -> None:
    """An ``Interrupted`` raised while a finalizer ran (a garbage-collected Connection's
    ``__del__``) cannot propagate: Python would print it as "Exception ignored in" with a
    traceback. It is noted in ``_received``, and ``check_interrupted`` raises it again where
    the run can act on it, so nothing needs printing; anything else is printed as usual."""
    if isinstance(unraisable.exc_value, Interrupted):
        return
    sys.__unraisablehook__(unraisable)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    # Once: a second signal must not cut short the teardown the first one started.
    for other in STOP_SIGNALS:
        signal.signal(other, signal.SIG_IGN)
    _received.append(signum)
    raise Interrupted(signum)


@contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into ``Interrupted`` inside the block (children forked inside
    inherit it); the previous handlers come back afterwards."""
    _received.clear()
    sys.unraisablehook = _quiet_unraisable
    previous = {s: signal.signal(s, _raise_interrupted) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def raise_on_signals() -> None:
    """For a command that is the whole life of its process (`run`): from now on SIGINT and
    SIGTERM raise ``Interrupted``, once; see ``note_signals`` for its end."""
    _received.clear()
    sys.unraisablehook = _quiet_unraisable
    for signum in STOP_SIGNALS:
        signal.signal(signum, _raise_interrupted)


def note_signals() -> list[int]:
    """From now on SIGINT and SIGTERM are only noted in the list returned, never raised nor
    restored to Python's default: for a command's final write and its last lines, which
    must finish once begun (also under a second Ctrl-C); the exit status then reports them."""
    noted: list[int] = []
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda received, _: noted.append(received))
    return noted


def check_interrupted() -> None:
    """Raise ``Interrupted`` again if a signal came whose exception some library swallowed
    (an ``except Exception`` or a ``__del__`` may catch it); call between units of work."""
    if _received:
        raise Interrupted(_received[0])


def _child_main(
    conn: Connection, fn: Callable[..., Any], args: tuple[Any, ...], group: int | None
) -> None:
    # Everything the parent made (Optuna, SQLAlchemy, NumPy: ~10^5 tracked objects) is left
    # out of this process's garbage collections. Otherwise each full collection walks them
    # all and writes to each object's header, so the child pays the walk and copies nearly
    # every inherited page (copy-on-write). Optuna's objects made here are collected as ever.
    gc.freeze()
    try:
        if group is not None:
            os.setpgid(0, group)
        # Blocked across the fork (see Child): a signal that came meanwhile raises here.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        conn.send(("ok", fn(*args)))
    except BaseException:
        # Written from named roots: results files are attached upstream (repro/paths.py).
        conn.send(("error", relativize(traceback.format_exc())))
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
    """One forked process running ``fn(*args)``. ``group=0`` puts it in a new process group
    of its own, ``group=<pgid>`` into that group (both sides call setpgid, so the group is
    set before either goes on); ``None`` leaves it in its parent's group."""

    def __init__(
        self, fn: Callable[..., Any], *args: Any, name: str = "worker", group: int | None = None
    ) -> None:
        self.name = name
        self._recv, send = CTX.Pipe(duplex=False)
        self.process = CTX.Process(target=_child_main, args=(send, fn, args, group))
        # No Interrupted inside fork's at-fork hooks (they swallow it): signals wait until
        # the child has its process group and the parent has the child.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            self.process.start()
            send.close()
            if group is not None:
                # PermissionError: the child got there first; ProcessLookupError: it exited.
                with contextlib.suppress(PermissionError, ProcessLookupError):
                    os.setpgid(self.process.pid or 0, group or self.process.pid or 0)
        finally:
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            except BaseException:
                self.kill()  # interrupted now: nothing has been asked of the child yet
                raise

    def result(self, deadline: float) -> Any:
        """The child's return value; ChildFailed if it raised, died or passed ``deadline``
        (a ``time.monotonic()`` value)."""
        try:
            remaining = max(0.0, deadline - time.monotonic())
            if not self._recv.poll(remaining):
                halted = stopped(self.process.pid)
                self.kill()
                raise ChildTimedOut(
                    f"{self.name} pid {self.process.pid} timed out (no result within the run "
                    f"timeout{'; it was stopped by a signal' if halted else ''})",
                    halted,
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
        except BaseException as exc:
            if not isinstance(exc, ChildFailed):
                self.kill()  # interrupted while waiting: the child's work is not wanted
            raise
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
