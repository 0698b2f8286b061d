"""``python -m repro.scale sweep``: the worker count as a dimension. For each storage (PostgreSQL
with forked worker processes, Optuna's gRPC proxy in front of PostgreSQL, Dask tasks on
PostgreSQL), each worker count and each sampler whose concurrent row is timing-dependent or
forced, concurrent workers on a grid with trials for every worker; a cell is checked against
this machine's limits first (``limits``) and written to the results file as soon as it is done.
Exit 0 every cell measured or recorded as blocked / not applicable, 1 a run recorded an error,
2 bad input."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repro.cmdline import positive_int
from repro.errors import ReproError
from repro.results import RunRecord
from repro.scenarios import DEFAULT_SPACE, DEFAULT_WORKERS, Mode, Scenario, SearchSpace, SeedPolicy

if TYPE_CHECKING:
    from repro.runner import Launch

# Where the workers run and what they open; each on a fresh PostgreSQL database per run.
STORAGES = ("postgresql", "grpc-postgresql", "dask-postgresql")
BACKEND = "postgresql"
# The samplers whose concurrent rows the sweep covers: GridSampler (racy on 3.2.0), the
# BruteForceSampler (racy from 3.1.0) and the enqueued grid (exact on PostgreSQL).
SAMPLERS = ("grid", "bruteforce", "enqueued")
WORKER_COUNTS = (2, 4, 8, 16, 32, 64)
# 16 x 16 = 256 points: at 64 workers every worker still has 4 trials.
SWEEP_SPACE: SearchSpace = (("x", tuple(range(16))), ("y", tuple(range(16))))
MODE: Mode = "concurrent"
SEED_POLICY: SeedPolicy = "none"
DEFAULT_REPETITIONS = 3
DEFAULT_OUT = Path("results/scale.json")
SCHEMA = 1


def add_parser(commands: Any) -> None:
    """The ``sweep`` subcommand of ``python -m repro.scale``."""
    # The space's argument type of `python -m repro run`, so that both read a space alike.
    from repro.cli import _space

    sweep = commands.add_parser("sweep", help="sweep the worker count; write results/scale.json")
    sweep.add_argument(
        "-w",
        "--workers",
        type=positive_int,
        nargs="+",
        default=list(WORKER_COUNTS),
        help="worker counts (default: 2 4 8 16 32 64); a count over a limit is recorded as such",
    )
    sweep.add_argument(
        "-r",
        "--repetitions",
        type=positive_int,
        default=DEFAULT_REPETITIONS,
        help="runs per timing-dependent cell (a forced outcome gets one run)",
    )
    sweep.add_argument("--storage", nargs="+", choices=STORAGES, default=list(STORAGES))
    sweep.add_argument("--sampler", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    sweep.add_argument(
        "--space",
        type=_space,
        default=SWEEP_SPACE,
        help="the grid as JSON (default: 16 x 16 = 256 points); at least one point per worker",
    )
    sweep.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="the results file (default: %(default)s)"
    )


@dataclasses.dataclass(frozen=True)
class Cell:
    """One storage, sampler and worker count on one release."""

    release: str
    storage: str
    sampler: str
    workers: int

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.release, self.storage, self.sampler, self.workers)

    def scenario(self, space: SearchSpace) -> Scenario:
        # Dask tasks open the database itself; the proxy's runs are named by the proxy.
        storage = BACKEND if self.storage.startswith("dask-") else self.storage
        return Scenario(
            MODE,
            SEED_POLICY,
            storage,
            workers=self.workers,
            search_space=space,
            remedy=self.sampler,  # type: ignore[arg-type]  # one of SAMPLERS
        )


def expectation(cell: Cell, space: SearchSpace, repetitions: int) -> dict[str, Any]:
    """The cell's row of repro/expectations.py (and the proxy's row), and how many runs it
    gets. ``runs_needed`` states its rule for the default shape; whether the code forces an
    outcome does not depend on the shape (``exact`` holds for any grid, and the chance that
    disagreeing shuffles still cover the grid shrinks as the grid grows), so it is asked
    about the default shape of the same sampler, mode and policy on the database itself."""
    from repro import expectations

    scenario = dataclasses.replace(cell.scenario(space), storage=BACKEND)
    row: expectations.Expectation | expectations.RemedyExpectation
    if cell.sampler == "grid":
        row = expectations.expected(cell.release, MODE, SEED_POLICY)
    else:
        row = expectations.remedy_expected(cell.release, cell.sampler, MODE, SEED_POLICY, BACKEND)
    probe = dataclasses.replace(scenario, workers=DEFAULT_WORKERS, search_space=DEFAULT_SPACE)
    runs = expectations.runs_needed(cell.release, probe, timed=repetitions, forced=1)
    proxy = expectations.proxy_expected(cell.release, cell.storage, cell.sampler)
    return {
        "outcome": row.outcome,
        "forced": runs == 1 and row.outcome in expectations.FORCED,
        "runs": runs,
        "why": row.why,
        "cite": list(row.cite),
        "proxy": None if proxy is None else {"outcome": proxy.outcome, "cite": list(proxy.cite)},
    }


def slim(record: RunRecord, problems: list[str]) -> dict[str, Any]:
    """What every figure of a cell is computed from, without the trial log (a 256-point run's
    log is tens of kB; the sweep holds hundreds of runs)."""

    def last_line(text: str) -> str:
        return text.strip().splitlines()[-1] if text.strip() else text

    return {
        "repetition": record.repetition,
        "trials": record.trials,
        "complete": record.complete,
        "missing": record.missing,
        "duplicates": record.duplicates,
        "missing_points": record.missing_points,
        "duplicated_points": record.duplicated_points,
        "worker_crashes": [last_line(c) for c in record.worker_crashes],
        "error": None if record.error is None else last_line(record.error),
        "violations": problems,
        "seconds": record.seconds,
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """A cell's figures from its runs alone (the renderer and the tests recompute them)."""
    from repro.stats import wilson95

    measured = [r for r in runs if r["error"] is None]
    losing = sum(1 for r in measured if r["missing"])
    low, high = wilson95(losing, len(measured))
    return {
        "runs": len(measured),
        "losing_runs": losing,
        "wilson95": [round(low, 4), round(high, 4)],
        "points_lost": sum(r["missing"] for r in measured),
        "extra_evaluations": sum(r["duplicates"] for r in measured),
        "runs_with_crash": sum(1 for r in measured if r["worker_crashes"]),
        "worker_crashes": sum(len(r["worker_crashes"]) for r in measured),
        "errors": len(runs) - len(measured),
    }


def cell_json(
    cell: Cell,
    status: str,
    *,
    reason: str | None = None,
    limits: dict[str, Any] | None = None,
    expected: dict[str, Any] | None = None,
    runs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    runs = runs or []
    return {
        "release": cell.release,
        "storage": cell.storage,
        "sampler": cell.sampler,
        "workers": cell.workers,
        "status": status,  # measured | failed | blocked | not applicable
        "reason": reason,
        "limits": limits,
        "expectation": expected,
        **summarize(runs),
        "records": runs,
    }


def is_measurement(cell: dict[str, Any]) -> bool:
    return cell["status"] in ("measured", "failed")


def merge(cells: list[dict[str, Any]], new: dict[str, Any]) -> list[dict[str, Any]]:
    """``cells`` with ``new`` in its place. A cell replaces an earlier one of the same key only
    with a clean measurement, or where the earlier one measured nothing: a blocked cell, or a
    failed one, never takes a measurement's place."""
    key = (new["release"], new["storage"], new["sampler"], new["workers"])
    out: list[dict[str, Any]] = []
    placed = False
    for old in cells:
        if (old["release"], old["storage"], old["sampler"], old["workers"]) != key:
            out.append(old)
            continue
        placed = True
        keep_old = is_measurement(old) and new["status"] != "measured"
        out.append(old if keep_old else new)
    if not placed:
        out.append(new)
    return sorted(out, key=_order)


def _order(cell: dict[str, Any]) -> tuple[Any, ...]:
    from repro.versions import version_key

    return (
        version_key(cell["release"]),
        STORAGES.index(cell["storage"]) if cell["storage"] in STORAGES else len(STORAGES),
        cell["storage"],
        SAMPLERS.index(cell["sampler"]) if cell["sampler"] in SAMPLERS else len(SAMPLERS),
        cell["workers"],
    )


def load(path: Path, space: SearchSpace) -> dict[str, Any]:
    """The results file so far (or an empty one); another grid's sweep is refused (one line)."""
    from repro import jsonfile

    shape = [[name, list(values)] for name, values in space]
    if not path.exists():
        return {"mode": MODE, "seed_policy": SEED_POLICY, "space": shape, "cells": []}
    data = jsonfile.load_json(path, schema=SCHEMA)
    if data["space"] != shape:
        raise ReproError(
            f"{path} holds a sweep of another grid; give another --out for this --space"
        )
    return data


def save(path: Path, data: dict[str, Any]) -> None:
    from repro import jsonfile

    path.parent.mkdir(parents=True, exist_ok=True)
    jsonfile.write_json(path, data, schema=SCHEMA)


def check_input(args: argparse.Namespace) -> None:
    size = math.prod(len(values) for _, values in args.space)
    if max(args.workers) > size:
        raise ReproError(
            f"{max(args.workers)} workers on a {size}-point grid: every worker needs a trial; "
            "lower -w or give a larger --space"
        )
    if args.out.exists() and args.out.is_dir():
        raise ReproError(f"--out {args.out} is a folder; give the results file")


def cmd_sweep(args: argparse.Namespace) -> int:
    from repro import _compat, services
    from repro.fork import ChildFailed
    from repro.scale import limits
    from repro.scale.extras import NotApplicable, require_distributed, require_grpc
    from repro.storages import StorageSpec

    check_input(args)
    release = _compat.OPTUNA_VERSION
    data = load(args.out, args.space)
    storages = [s for s in STORAGES if s in args.storage]
    not_applicable: str | None = None
    if any(s.startswith("grpc-") for s in storages):
        try:
            require_grpc()
        except NotApplicable as exc:
            not_applicable = str(exc)  # recorded per cell below, never a silent skip
    if any(s.startswith("dask-") for s in storages):
        require_distributed()
    services.check_reachable(StorageSpec(BACKEND, services.server_url(BACKEND)))
    try:
        capacity = limits.measure(dask=any(s.startswith("dask-") for s in storages))
    except ChildFailed as exc:
        raise ReproError(f"cannot read PostgreSQL's limits: {str(exc).strip()}") from None
    print(
        f"Optuna {release}: PostgreSQL {capacity.free_connections} connections free of "
        f"{capacity.max_connections}; {capacity.memory_available_mb} MB available",
        flush=True,
    )
    failed = False
    for storage in storages:
        for workers in sorted(set(args.workers)):
            cells = [Cell(release, storage, s, workers) for s in SAMPLERS if s in args.sampler]
            if storage.startswith("grpc-") and not_applicable is not None:
                for cell in cells:
                    _record(
                        args.out, data, cell_json(cell, "not applicable", reason=not_applicable)
                    )
                continue
            check = limits.check(storage, workers, capacity)
            if check.blocked is not None:
                for cell in cells:
                    blocked = cell_json(
                        cell, "blocked", reason=check.blocked, limits=check.to_json()
                    )
                    _record(args.out, data, blocked)
                continue
            with _launcher(storage, workers) as launch:
                for cell in cells:
                    done = _measure(cell, args, launch, check.to_json())
                    failed |= done["status"] == "failed"
                    _record(args.out, data, done)
    return 1 if failed else 0


def _record(path: Path, data: dict[str, Any], cell: dict[str, Any]) -> None:
    """Merge the cell into the file and write it at once (atomically), then say so."""
    data["cells"] = merge(data["cells"], cell)
    save(path, data)
    name = f"{cell['storage']} {cell['sampler']} x{cell['workers']}"
    if not is_measurement(cell):
        print(f"{name}: {cell['status']}: {cell['reason']}", flush=True)
        return
    low, high = cell["wilson95"]
    print(
        f"{name}: {cell['losing_runs']} of {cell['runs']} runs lost points (95% {low:.2f}-"
        f"{high:.2f}); {cell['points_lost']} lost, {cell['extra_evaluations']} extra; "
        f"{cell['worker_crashes']} worker crashes, {cell['errors']} errors",
        flush=True,
    )


@contextmanager
def _launcher(storage: str, workers: int) -> Iterator[Launch | None]:
    """The run's launch step: forked processes (None), or tasks on a LocalCluster of
    ``workers`` single-threaded Dask workers, started once for the samplers of this count."""
    if not storage.startswith("dask-"):
        yield None
        return
    from repro.scale import dask

    with dask.cluster(workers, None) as client:
        yield dask.launcher(client)


def _measure(
    cell: Cell, args: argparse.Namespace, launch: Launch | None, limits: dict[str, Any]
) -> dict[str, Any]:
    expected = expectation(cell, args.space, args.repetitions)
    scenario = cell.scenario(args.space)
    runs = []
    for repetition in range(expected["runs"]):
        record = _one_run(cell, scenario, repetition, launch)
        runs.append(slim(record, _violations(cell, record)))
    status = "failed" if any(r["error"] for r in runs) else "measured"
    return cell_json(cell, status, limits=limits, expected=expected, runs=runs)


def _one_run(cell: Cell, scenario: Scenario, repetition: int, launch: Launch | None) -> RunRecord:
    """One run on a fresh database, through a proxy of its own (threads for every worker)
    for the proxy's cells."""
    from repro import runner
    from repro.fork import check_interrupted
    from repro.scale.proxy import serving

    if not cell.storage.startswith("grpc-"):
        record = runner.run(scenario, repetition, launch=launch)
    else:
        name = f"repro-{scenario.id}-r{repetition}"
        with (
            runner._fresh_storage(BACKEND, name) as backend,
            serving(backend, workers=cell.workers) as proxy,
        ):
            record = runner.run(scenario, repetition, storage=proxy.spec, launch=launch)
    # A signal that a library swallowed while the workers ran still ends the sweep here.
    check_interrupted()
    return record


def _violations(cell: Cell, record: RunRecord) -> list[str]:
    from repro import expectations

    if cell.storage.startswith("grpc-"):
        return expectations.proxy_violations(record, cell.release)
    return expectations.violations(record, cell.release)


COMMAND = {"sweep": cmd_sweep}
