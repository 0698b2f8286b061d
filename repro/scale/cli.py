"""``python -m repro.scale run``: a scenario's workers on Optuna's gRPC storage proxy in front
of a fresh database, one proxy server per run. Exit 0 measured, 1 a run recorded an error,
2 bad input or a missing piece (one line)."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from repro.cmdline import Parser, dispatch, positive_int, prog_name
from repro.scenarios import DEFAULT_WORKERS, MAX_WORKERS, Scenario
from repro.storages import StorageSpec

BACKENDS = ("sqlite", "postgresql")


def build_parser(prog: str) -> Parser:
    parser = Parser(prog=prog, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the workers through the gRPC storage proxy")
    run.add_argument("--backend", choices=BACKENDS, default="sqlite", help="database behind it")
    run.add_argument(
        "-w", "--workers", type=positive_int, default=DEFAULT_WORKERS, help="worker processes"
    )
    run.add_argument("-r", "--repetitions", type=positive_int, default=1, help="runs")
    run.add_argument(
        "--mode", choices=("sequential", "concurrent"), default="concurrent", help="launch mode"
    )
    run.add_argument(
        "--seed-policy", choices=("none", "shared", "per-worker"), default="none", help="seeds"
    )
    run.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write the runs to DIR/grpc-optuna-VERSION.json (also where not applicable)",
    )
    return parser


SCHEMA = 1


def results_file(directory: Path, version: str) -> Path:
    """One file per Optuna release, so that a release where the proxy is not applicable never
    replaces another release's measurement."""
    return directory / f"grpc-optuna-{version}.json"


def cmd_run(args: argparse.Namespace) -> int:
    from repro import _compat, expectations, jsonfile, runner, services
    from repro.errors import ReproError
    from repro.fork import check_interrupted
    from repro.scale.extras import NotApplicable, require_grpc
    from repro.scale.proxy import serving

    if args.workers > MAX_WORKERS:
        raise ReproError(f"--workers {args.workers}: at most {MAX_WORKERS}")
    version = _compat.OPTUNA_VERSION
    out = None if args.out is None else results_file(args.out, version)
    try:
        require_grpc()
    except NotApplicable as exc:
        # Recorded as such (never an empty file that looks like a skip), then the one line.
        if out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            data = {"optuna": version, "backend": args.backend, "not_applicable": str(exc)}
            jsonfile.write_json(out, {**data, "runs": []}, schema=SCHEMA)
        raise
    if args.backend == "postgresql":
        services.check_reachable(StorageSpec("postgresql", services.server_url("postgresql")))
    storage = f"grpc-{args.backend}"
    scenario = Scenario(args.mode, args.seed_policy, storage, workers=args.workers)
    row = expectations.proxy_expected(version, storage)
    records = []
    for repetition in range(args.repetitions):
        name = f"repro-{scenario.id}-r{repetition}"
        with (
            runner._fresh_storage(args.backend, name) as backend,
            serving(backend) as proxy,
        ):
            print(f"proxy pid {proxy.pid} on {proxy.spec.location}", file=sys.stderr, flush=True)
            record = runner.run(scenario, repetition, storage=proxy.spec)
        # A signal that a library swallowed while the workers ran still ends the run here.
        check_interrupted()
        records.append(record)
        problems = expectations.violations(record, version)
        outcome = (
            f"{record.missing} of {record.grid_size} points lost, "
            f"{record.duplicates} extra evaluations"
        )
        held = "; ".join(problems) or (
            f"as expected through the proxy ({row.outcome if row else 'no row'}: "
            f"{expectations.expected(version, record.mode, record.seed_policy).outcome})"
        )
        print(f"{scenario.id} r{repetition}: {outcome}; {held}", flush=True)
    if out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        data = {"optuna": version, "backend": args.backend, "not_applicable": None}
        jsonfile.write_json(out, {**data, "runs": [r.to_json() for r in records]}, schema=SCHEMA)
    return 1 if any(r.error for r in records) else 0


def main(argv: Sequence[str] | None = None) -> int:
    prog = prog_name("python -m repro.scale")
    args = build_parser(prog).parse_args(argv)
    from repro.fork import STOP_SIGNALS, Interrupted, note_signals, raise_on_signals

    # SIGINT and SIGTERM raise, whatever the process inherited (a background job's SIGINT is
    # ignored), so that every ``finally`` on the way out runs: the proxy server is stopped
    # and the run's storage removed.
    raise_on_signals()
    try:
        return dispatch(prog, {"run": cmd_run}, args)
    except Interrupted as exc:
        note_signals()
        print(f"{exc}: the proxy server and the storage are removed", file=sys.stderr)
        return 128 + exc.signum
    finally:
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
