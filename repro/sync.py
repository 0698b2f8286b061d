"""A reusable barrier for worker processes whose number can shrink (a phaser).

A plain ``multiprocessing.Barrier`` deadlocks the last round: once one worker has used up its
trials the others would wait for it forever. Here a worker that is done deregisters, and the
remaining parties complete the round without it. Every wait has a timeout, so a crashed worker
turns into ``PhaserTimeout`` in the others instead of a hang.
"""

from __future__ import annotations

import os
import time
from multiprocessing.context import BaseContext
from typing import Any


class PhaserTimeout(RuntimeError):
    pass


class Phaser:
    def __init__(self, ctx: BaseContext, parties: int) -> None:
        self._cond: Any = ctx.Condition()
        self._parties: Any = ctx.Value("i", parties, lock=False)
        self._arrived: Any = ctx.Value("i", 0, lock=False)
        self._phase: Any = ctx.Value("i", 0, lock=False)
        # The pids waiting in ``arrive_and_wait`` now, one slot each (0: free): a worker that
        # gave no result by the run's deadline and is not here is the one the others waited for.
        self._waiting: Any = ctx.Array("i", parties, lock=False)

    @property
    def phase(self) -> int:
        with self._cond:
            return int(self._phase.value)

    def _advance_if_complete(self) -> None:
        if self._parties.value > 0 and self._arrived.value >= self._parties.value:
            self._arrived.value = 0
            self._phase.value += 1
            self._cond.notify_all()

    def arrive_and_wait(self, timeout: float) -> int:
        """Block until every registered party has arrived in this phase; return the phase."""
        with self._cond:
            phase = self._phase.value
            self._arrived.value += 1
            slot = list(self._waiting).index(0)
            self._waiting[slot] = os.getpid()
            try:
                self._advance_if_complete()
                if not self._cond.wait_for(lambda: self._phase.value != phase, timeout):
                    raise PhaserTimeout(
                        f"barrier phase {phase}: {self._arrived.value} of {self._parties.value} "
                        f"workers arrived within {timeout:g} s"
                    )
                return int(phase)
            finally:
                self._waiting[slot] = 0

    def waiting(self) -> set[int]:
        """The pids waiting at the barrier now. Read without the lock, which a stopped
        worker may hold: a diagnosis after the deadline, not a synchronisation."""
        return {pid for pid in self._waiting if pid}

    def deregister(self) -> None:
        with self._cond:
            self._parties.value -= 1
            self._advance_if_complete()


class StorageBarrier:
    """The same protocol as Phaser, for workers on different hosts that share only a storage.

    Arrivals and departures are study user attributes; a waiting worker re-reads them every
    ``poll`` seconds. The wait is a poll interval of the barrier, not a source of overlap: a
    worker proceeds only once every live worker has arrived, however long that takes, up to
    the timeout.
    """

    def __init__(self, study: Any, index: int, parties: int, poll: float = 0.02) -> None:
        self._study = study
        self._index = index
        self._parties = parties
        self._poll = poll
        self._phase = 0

    def _ready(self, phase: int) -> bool:
        attrs = self._study.user_attrs
        return all(
            f"repro_barrier_{phase}_{j}" in attrs or f"repro_barrier_done_{j}" in attrs
            for j in range(self._parties)
        )

    def arrive_and_wait(self, timeout: float) -> int:
        phase = self._phase
        self._study.set_user_attr(f"repro_barrier_{phase}_{self._index}", True)
        deadline = time.monotonic() + timeout
        while not self._ready(phase):
            if time.monotonic() > deadline:
                raise PhaserTimeout(
                    f"storage barrier phase {phase}: not every worker arrived within {timeout:g} s"
                )
            time.sleep(self._poll)
        self._phase += 1
        return phase

    def deregister(self) -> None:
        self._study.set_user_attr(f"repro_barrier_done_{self._index}", self._phase)
