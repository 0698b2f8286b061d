"""``python -m repro.scale run``: a scenario's workers on Optuna's gRPC storage proxy in front
of a fresh database, one proxy server per run. Exit 0 measured, 1 a run recorded an error,
2 bad input or a missing piece (one line)."""

from __future__ import annotations

import argparse
import json
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
    run.add_argument("--out", type=Path, help="write the run records here as JSON")
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from repro import jsonfile, runner, services
    from repro.errors import ReproError
    from repro.fork import check_interrupted
    from repro.scale.extras import require_grpc
    from repro.scale.proxy import serving

    if args.workers > MAX_WORKERS:
        raise ReproError(f"--workers {args.workers}: at most {MAX_WORKERS}")
    require_grpc()
    if args.backend == "postgresql":
        services.check_reachable(StorageSpec("postgresql", services.server_url("postgresql")))
    scenario = Scenario(args.mode, "none", f"grpc-{args.backend}", workers=args.workers)
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
        outcome = (
            record.error.strip().splitlines()[-1]
            if record.error
            else (
                f"{record.missing} of {record.grid_size} points lost, "
                f"{record.duplicates} extra evaluations"
            )
        )
        print(f"{scenario.id} r{repetition}: {outcome}", flush=True)
    if args.out is not None:
        data = {"runs": [r.to_json() for r in records]}
        jsonfile.write_atomic(args.out, json.dumps(data, indent=1) + "\n")
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
