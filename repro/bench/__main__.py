"""Command line: ``python -m repro.bench`` times the harness against a plain script per storage
and worker count and writes ``results/bench.json`` (``nox -s bench``)."""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from repro.bench import DEFAULT_GRID_UP_TO, WORKER_COUNTS, records, workers_option
from repro.bench import scenario as bench_scenario
from repro.cmdline import Parser, dispatch, positive_int, positive_seconds
from repro.environment import environment
from repro.errors import ReproError
from repro.scenarios import ALL_STORAGES, MAX_WORKERS, SERVER_STORAGES
from repro.storages import StorageError, StorageSpec

PROG = "python -m repro.bench"
DEFAULT_OUT = Path("results/bench.json")
# Three is the fewest runs whose median ignores one slow first run. What a whole bench took
# is in docs/bench.md.
DEFAULT_REPETITIONS = 3


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Time the #5489 pattern (sequential workers, no seed) in the harness "
        "against the same work done by a plain script, interleaved, on every storage and at "
        "every worker count; write both times, their ratio and the workers' start-up as JSON. "
        "Exit status 1 if a run failed.",
    )
    parser.add_argument(
        "--storage",
        action="append",
        choices=ALL_STORAGES,
        default=[],
        help="storage kind, repeatable (default: all; an unreachable server is skipped "
        "with a line, or an error when asked for here or in CI)",
    )
    parser.add_argument(
        "--no-services", action="store_true", help="leave postgresql, mysql and redis out"
    )
    parser.add_argument(
        "-w",
        "--workers",
        type=workers_option,
        nargs="+",
        default=list(WORKER_COUNTS),
        metavar="N",
        help="worker counts, each timed on every storage (default: "
        f"{' '.join(map(str, WORKER_COUNTS))}). Up to {DEFAULT_GRID_UP_TO} workers run "
        "the default 24-point grid (at 4: the harness's default scenario, "
        "sequential-none-<storage>-w4-g24); more workers run 4 points each "
        f"(x: 0..N-1, y: a-d); at most {MAX_WORKERS}",
    )
    parser.add_argument(
        "-r",
        "--repetitions",
        type=positive_int,
        default=DEFAULT_REPETITIONS,
        help=f"timed runs of each side per storage (default: {DEFAULT_REPETITIONS})",
    )
    parser.add_argument(
        "--timeout",
        type=positive_seconds,
        default=120.0,
        help="seconds one run may take before its workers are killed (default: 120)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"JSON file (default: {DEFAULT_OUT})"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-run lines")
    parser.set_defaults(command="bench")
    return parser


def _skip_reason(kind: str, explicit: bool) -> str | None:
    """Why a server storage is left out, or None when it answers. Asked for by --storage or
    in CI, an unreachable server is an error instead, as for `python -m repro run`."""
    from repro import services
    from repro.cli import services_required

    try:
        services.check_reachable(StorageSpec(kind, services.server_url(kind)))
    except StorageError as exc:
        if explicit or services_required():
            raise
        return f"{exc} (start it, or set {services.ENV_VARS[kind]}; CI fails here instead)"
    return None


def cmd_bench(args: argparse.Namespace) -> int:
    if args.out.is_dir():
        raise ReproError(f"--out {args.out} is a directory; give a file such as {DEFAULT_OUT}")
    kinds = list(dict.fromkeys(args.storage)) or list(ALL_STORAGES)
    counts = list(dict.fromkeys(args.workers))
    if args.no_services:
        left_out = [k for k in kinds if k in SERVER_STORAGES]
        kinds = [k for k in kinds if k not in SERVER_STORAGES]
        if not kinds:
            raise ReproError("no storage left to bench: --no-services leaves out every --storage")
        print(f"left out (--no-services): {', '.join(left_out)}", file=sys.stderr)
    # Imported here so that --help and bad input answer without importing Optuna.
    from repro import _compat
    from repro.bench import measure

    _compat.warm_up()
    skipped = {
        k: reason
        for k in kinds
        if k in SERVER_STORAGES and (reason := _skip_reason(k, k in args.storage))
    }
    env = environment()
    print(
        f"Optuna {_compat.OPTUNA_VERSION} (python {env['python']}): harness vs plain script, "
        f"{len(kinds) - len(skipped)} storages x {' and '.join(map(str, counts))} workers x "
        f"{args.repetitions} repetitions",
        file=sys.stderr,
    )
    for kind, reason in skipped.items():
        print(f"skipped {kind}: {reason}", file=sys.stderr)
    began = time.monotonic()
    done: list[records.StorageBench] = []
    # Every storage at one count before the next count: an interrupted bench keeps whole counts.
    for workers, kind in itertools.product(counts, kinds):
        if kind in skipped:
            scenario = bench_scenario(kind, workers).id
            done.append(
                records.StorageBench(
                    kind, scenario, records.SKIPPED, skipped[kind], workers=workers
                )
            )
        else:
            done.append(
                measure.bench_storage(
                    kind,
                    workers,
                    args.repetitions,
                    args.timeout,
                    progress=None if args.quiet else lambda line: print(line, file=sys.stderr),
                )
            )
        bench = records.BenchFile(
            optuna_version=_compat.OPTUNA_VERSION,
            python=str(env["python"]),
            platform=str(env["platform"]),
            packages=dict(env["packages"]),  # type: ignore[call-overload]
            storages=list(done),
            repetitions=args.repetitions,
            command=f"{PROG} " + " ".join(sys.argv[1:]),
            wall_seconds=round(time.monotonic() - began, 1),
            method=measure.METHOD,
        )
        # After every storage, so an interrupted bench keeps what it measured.
        records.save(args.out, bench)
    for line in summary(bench):
        print(line, file=sys.stderr)
    print(f"wrote {args.out} ({bench.wall_seconds:.1f} s)", file=sys.stderr)
    failed = any(r.error for s in bench.storages for r in s.harness + s.plain)
    return 1 if failed else 0


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def summary(bench: records.BenchFile) -> list[str]:
    """One line per storage, then the storages over the goal."""
    lines = []
    for s in bench.storages:
        if s.status == records.SKIPPED:
            lines.append(f"{s.label}: skipped")
            continue
        errors = sum(1 for r in s.harness + s.plain if r.error)
        lines.append(
            f"{s.label}: harness {_seconds(s.harness_median_s)}, plain "
            f"{_seconds(s.plain_median_s)} (medians), ratio "
            f"{'-' if s.ratio is None else f'{s.ratio:.2f}'}, worker start-up "
            f"{_seconds(s.startup_median_s)}" + (f", {errors} failed runs" if errors else "")
        )
    over = bench.over_goal()
    if over:
        names = ", ".join(s.label for s in over)
        lines.append(f"ratio above {bench.goal_ratio} (or not measured) on: {names}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return dispatch(PROG, {"bench": cmd_bench}, args)


if __name__ == "__main__":
    sys.exit(main())
