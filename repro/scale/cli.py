"""``python -m repro.scale run``: a scenario's workers on Optuna's gRPC storage proxy in front
of a fresh database, one proxy server per run, or on the database itself; as forked processes
or as Dask tasks (each building its own storage and sampler, or Optuna's Dask example: one
study pickled into every task, also on DaskStorage). Exit 0 measured, 1 a run recorded an
error, 2 bad input or a missing piece (one line)."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

# The shapes' argument types of `python -m repro run`, so that both read a space alike.
from repro.cli import _space, _workers
from repro.cmdline import Parser, dispatch, positive_int, prog_name
from repro.results import RunRecord
from repro.scale import sweep
from repro.scenarios import DEFAULT_SPACE, DEFAULT_WORKERS, Scenario
from repro.storages import StorageSpec

if TYPE_CHECKING:
    from distributed import Client

BACKENDS = ("sqlite", "postgresql")


def build_parser(prog: str) -> Parser:
    parser = Parser(prog=prog, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the workers through the gRPC storage proxy")
    run.add_argument("--backend", choices=BACKENDS, default="sqlite", help="database behind it")
    run.add_argument(
        "-w", "--workers", type=_workers, default=DEFAULT_WORKERS, help="worker processes"
    )
    run.add_argument(
        "--space",
        type=_space,
        default=DEFAULT_SPACE,
        help="the grid as JSON, e.g. '{\"x\": [0, 1, 2]}' (default: the 24-point grid)",
    )
    run.add_argument("-r", "--repetitions", type=positive_int, default=1, help="runs")
    run.add_argument(
        "--mode", choices=("sequential", "concurrent"), default="concurrent", help="launch mode"
    )
    run.add_argument(
        "--seed-policy", choices=("none", "shared", "per-worker"), default="none", help="seeds"
    )
    run.add_argument(
        "--remedy",
        choices=("grid", "bruteforce", "enqueued", "x2"),
        default="grid",
        help="the sampler: GridSampler, BruteForceSampler or the enqueued grid; x2: GridSampler "
        "with twice the grid's trials",
    )
    run.add_argument(
        "--launcher",
        choices=("processes", "dask"),
        default="processes",
        help="workers as forked processes, or as Dask tasks (each builds its storage and sampler)",
    )
    run.add_argument(
        "--dask-pattern",
        choices=("own", "pickled"),
        default="own",
        help="with --launcher dask: each task builds its own storage and sampler (own), or "
        "Optuna's Dask example: one study made here, study.optimize submitted per worker "
        "(pickled)",
    )
    run.add_argument(
        "--dask-storage",
        choices=("off", "memory", "database"),
        default="off",
        help="with --dask-pattern pickled: the study on DaskStorage, in the scheduler's memory "
        "or over the run's database (no proxy then)",
    )
    run.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="with --launcher dask: an existing cluster (default: a LocalCluster on 127.0.0.1)",
    )
    run.add_argument(
        "--direct", action="store_true", help="the same runs on the database, without the proxy"
    )
    run.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write the runs to DIR/STORAGE-SAMPLER-optuna-VERSION.json (also not applicable)",
    )
    summary = commands.add_parser("summary", help="per file of DIR: runs losing points, Wilson 95%")
    summary.add_argument("directory", type=Path, metavar="DIR")
    sweep.add_parser(commands)
    return parser


SCHEMA = 1


def results_file(directory: Path, storage: str, remedy: str, version: str) -> Path:
    """One file per storage (``grpc-sqlite``, or ``sqlite`` with --direct), sampler and Optuna
    release, so that a release where the proxy is not applicable never replaces another's
    measurement."""
    return directory / f"{storage}-{remedy}-optuna-{version}.json"


def cmd_run(args: argparse.Namespace) -> int:
    from repro import _compat, jsonfile, services
    from repro.scale.extras import NotApplicable, require_grpc

    version = _compat.OPTUNA_VERSION
    _check_dask_options(args)
    storage = _storage_id(args)
    out = None if args.out is None else results_file(args.out, storage, args.remedy, version)
    header = {"optuna": version, "backend": args.backend, "proxy": _proxied(args)}
    if args.dask_storage != "off":
        from repro.scale.pattern import require_dask_storage

        require_dask_storage()
    if _proxied(args):
        try:
            require_grpc()
        except NotApplicable as exc:
            # Recorded as such (never an empty file that looks like a skip), then the one line.
            if out is not None:
                args.out.mkdir(parents=True, exist_ok=True)
                data = {**header, "not_applicable": str(exc), "runs": []}
                jsonfile.write_json(out, data, schema=SCHEMA)
            raise
    if args.backend == "postgresql" and args.dask_storage != "memory":
        services.check_reachable(StorageSpec("postgresql", services.server_url("postgresql")))
    scenario = Scenario(
        args.mode,
        args.seed_policy,
        storage,
        workers=args.workers,
        search_space=args.space,
        remedy=args.remedy,
    )
    if args.dask_pattern == "pickled":
        from repro.scale import pattern

        pattern.check(scenario)
    records: list[RunRecord] = []

    def save() -> None:
        # After every run, so that an interrupt or a lost cluster keeps the runs measured.
        if out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            data = {**header, "not_applicable": None, "runs": [r.to_json() for r in records]}
            jsonfile.write_json(out, data, schema=SCHEMA)

    with ExitStack() as stack:
        client = None
        if args.launcher == "dask":
            from repro.scale import dask

            client = stack.enter_context(dask.cluster(args.workers, args.scheduler))
        for repetition in range(args.repetitions):
            record, line = _one_run(scenario, repetition, args, client)
            records.append(record)
            save()
            # Printed once it is on disk: a run a reader has seen survives an interrupt.
            print(line, flush=True)
            if client is not None and client.status != "running":
                # The scheduler is gone (its run recorded the error): no cluster for the rest.
                print(
                    f"lost the Dask scheduler after run {repetition}; the runs so far are kept",
                    file=sys.stderr,
                )
                break
    return 1 if any(r.error for r in records) else 0


def _check_dask_options(args: argparse.Namespace) -> None:
    from repro.errors import ReproError

    if args.launcher != "dask":
        for option, value, default in (
            ("--scheduler", args.scheduler, None),
            ("--dask-pattern", args.dask_pattern, "own"),
            ("--dask-storage", args.dask_storage, "off"),
        ):
            if value != default:
                raise ReproError(f"{option} goes with --launcher dask")
    if args.dask_storage != "off" and args.dask_pattern != "pickled":
        raise ReproError("--dask-storage goes with --dask-pattern pickled")


def _proxied(args: argparse.Namespace) -> bool:
    """Through the gRPC proxy: unless --direct, and DaskStorage takes the proxy's place."""
    return not args.direct and args.dask_storage == "off"


def _storage_id(args: argparse.Namespace) -> str:
    """The run's storage as its scenario and results file name it: ``postgresql``,
    ``grpc-postgresql``; ``pickled-`` before it for Optuna's Dask example pattern;
    ``dask-memory`` or ``dask-postgresql`` for DaskStorage."""
    if args.dask_storage == "memory":
        return "dask-memory"
    if args.dask_storage == "database":
        return f"dask-{args.backend}"
    storage = f"grpc-{args.backend}" if _proxied(args) else args.backend
    return f"pickled-{storage}" if args.dask_pattern == "pickled" else storage


def _one_run(
    scenario: Scenario, repetition: int, args: argparse.Namespace, client: Client | None
) -> tuple[RunRecord, str]:
    """One run on a fresh database, through a proxy of its own unless --direct, and the line
    that tells it with its verdict: through the proxy, the row of the database itself
    (``PROXY_TABLE``); Optuna's Dask example pattern and DaskStorage, their own row
    (``DASK_TABLE``)."""
    from repro import _compat, expectations, runner
    from repro.fork import check_interrupted
    from repro.scale.proxy import serving

    version = _compat.OPTUNA_VERSION
    name = f"repro-{scenario.id}-r{repetition}"
    with ExitStack() as stack:
        spec = None
        if args.dask_storage != "memory" and (args.dask_pattern == "pickled" or _proxied(args)):
            spec = stack.enter_context(runner._fresh_storage(args.backend, name))
        if spec is not None and _proxied(args):
            proxy = stack.enter_context(serving(spec, workers=scenario.workers))
            print(f"proxy pid {proxy.pid} on {proxy.spec.location}", file=sys.stderr, flush=True)
            spec = proxy.spec
        record = _measure(scenario, repetition, args, client, spec)
    # A signal that a library swallowed while the workers ran still ends the run here.
    check_interrupted()
    if args.dask_pattern == "pickled":
        try:
            dask_row = expectations.dask_expected(version, scenario.storage)
            problems = expectations.dask_violations(record, version)
            held = "; ".join(problems) or f"as expected ({dask_row.outcome})"
        except expectations.NoExpectation as exc:
            # Measured all the same: a budget above the grid has no row on every release.
            held = f"measured only: {exc}"
    elif args.direct:
        problems = expectations.violations(record, version)
        held = "; ".join(problems) or "as expected"
    else:
        row = expectations.proxy_expected(version, scenario.storage, scenario.remedy)
        problems = expectations.proxy_violations(record, version)
        held = "; ".join(problems) or f"as expected through the proxy ({row and row.outcome})"
    outcome = (
        f"{record.missing} of {record.grid_size} points lost, {record.duplicates} extra evaluations"
    )
    return record, f"{scenario.id} r{repetition}: {outcome}; {held}"


def _measure(
    scenario: Scenario,
    repetition: int,
    args: argparse.Namespace,
    client: Client | None,
    spec: StorageSpec | None,
) -> RunRecord:
    """The run itself: the harness's runner (forked workers, or one Dask task per worker that
    builds its own storage and sampler), or Optuna's Dask example pattern on ``client``."""
    from repro import runner
    from repro.scale import dask, pattern

    if args.dask_pattern == "pickled":
        assert client is not None
        return pattern.run(
            scenario,
            repetition,
            client,
            lambda: pattern.client_storage(client, args.dask_storage, spec),
        )
    launch = None if client is None else dask.launcher(client)
    return runner.run(scenario, repetition, storage=spec, launch=launch)


def cmd_summary(args: argparse.Namespace) -> int:
    """One line per results file: the runs that lost a point with their Wilson 95% interval,
    and the points lost and evaluated twice in all, read from the JSON alone."""
    from repro import jsonfile
    from repro.errors import ReproError
    from repro.stats import wilson95

    files = sorted(args.directory.glob("*-optuna-*.json"))
    if not files:
        raise ReproError(f"{args.directory}: no results of python -m repro.scale run")
    for path in files:
        data = jsonfile.load_json(path, schema=SCHEMA)
        if data["not_applicable"]:
            print(f"{path.stem}: {data['not_applicable']}")
            continue
        runs = [RunRecord.from_json(r) for r in data["runs"] if not r["error"]]
        losing = sum(1 for r in runs if r.missing)
        low, high = wilson95(losing, len(runs))
        scenarios = ", ".join(sorted({r.scenario for r in runs}))
        print(
            f"{path.stem} ({scenarios}): {losing} of {len(runs)} runs lost points "
            f"(95% {low:.2f}-{high:.2f}); {sum(r.missing for r in runs)} points lost, "
            f"{sum(r.duplicates for r in runs)} extra evaluations; "
            f"{sum(1 for r in runs if r.worker_crashes)} runs with a worker crash; "
            f"{len(data['runs']) - len(runs)} runs failed"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    prog = prog_name("python -m repro.scale")
    args = build_parser(prog).parse_args(argv)
    from repro.fork import STOP_SIGNALS, Interrupted, note_signals, raise_on_signals

    # SIGINT and SIGTERM raise, whatever the process inherited (a background job's SIGINT is
    # ignored), so that every ``finally`` on the way out runs: the proxy server is stopped
    # and the run's storage removed.
    raise_on_signals()
    try:
        return dispatch(prog, {"run": cmd_run, "summary": cmd_summary, **sweep.COMMAND}, args)
    except Interrupted as exc:
        note_signals()
        print(f"{exc}: the proxy server and the storage are removed", file=sys.stderr)
        return 128 + exc.signum
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
