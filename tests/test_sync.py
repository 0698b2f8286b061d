"""The phaser barrier: all live workers meet each round, finished workers drop out, a missing
worker turns into a timeout instead of a hang."""

from __future__ import annotations

import time

import pytest

from repro.fork import CTX, Child
from repro.sync import Phaser, PhaserTimeout

pytestmark = pytest.mark.xdist_group("processes")


def rounds(phaser: Phaser, n: int) -> list[int]:
    try:
        return [phaser.arrive_and_wait(10) for _ in range(n)]
    finally:
        phaser.deregister()


def test_parties_that_finish_early_do_not_block_the_rest() -> None:
    """Workers with 1, 2 and 3 rounds: every round completes, phases count up together."""
    phaser = Phaser(CTX, 3)
    children = [Child(rounds, phaser, n) for n in (1, 2, 3)]
    deadline = time.monotonic() + 30
    assert [c.result(deadline) for c in children] == [[0], [0, 1], [0, 1, 2]]


def test_a_party_that_never_arrives_times_out() -> None:
    phaser = Phaser(CTX, 2)
    with pytest.raises(PhaserTimeout, match=r"1 of 2 workers arrived within 0\.2 s"):
        phaser.arrive_and_wait(0.2)
