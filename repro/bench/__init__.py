"""``nox -s bench``: what the harness costs. Per storage and worker count, the #5489 pattern
(``scenario``) is timed in the harness next to the same work done by a plain script
(``plain.py``), interleaved (``measure.py``), and both times, their ratio and the workers'
start-up go to ``results/bench.json`` (``records.py``); ``__main__.py`` is the command line."""

from __future__ import annotations

import argparse

from repro.cmdline import positive_int
from repro.scenarios import DEFAULT_SPACE, DEFAULT_WORKERS, MAX_WORKERS, Scenario, SearchSpace

# The worker counts a bench times by default: the harness's default scenario, and the most
# workers a run may have, where the fixed work of a run is spread over many workers and the
# work per trial counts most.
WORKER_COUNTS = (DEFAULT_WORKERS, MAX_WORKERS)


_X, _Y = DEFAULT_SPACE
# Up to this many workers (6) run the default grid: every worker gets 4 or more of its points.
DEFAULT_GRID_UP_TO = len(_X[1])


def space_for(workers: int) -> SearchSpace:
    """The default grid (x: 6 ints, y: 4 letters) up to ``DEFAULT_GRID_UP_TO`` workers, else
    x: 0..workers-1 with the same 4 letters: 4 points per worker (256 at 64 workers), so that
    every worker has trials to run."""
    if workers <= DEFAULT_GRID_UP_TO:
        return DEFAULT_SPACE
    return (("x", tuple(range(workers))), _Y)


def scenario(storage: str, workers: int = DEFAULT_WORKERS) -> Scenario:
    """The #5489 pattern at ``workers``: sequential workers, no seed, each with its even share
    of the grid and the study capped at the grid size (``MaxTrialsCallback``). At 4 workers
    this is the harness's default scenario, ``sequential-none-<storage>-w4-g24``."""
    return Scenario("sequential", "none", storage, workers=workers, search_space=space_for(workers))


def workers_option(text: str) -> int:
    """A worker count on the command line: 1 to ``MAX_WORKERS``, as `repro run` takes it."""
    value = positive_int(text)
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{value} is above the bound of {MAX_WORKERS} workers")
    return value
