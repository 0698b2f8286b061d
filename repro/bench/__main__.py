"""Command line: ``python -m repro.bench`` times the harness against a plain script per storage
and writes ``results/bench.json`` (``nox -s bench``)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from repro.bench import records
from repro.cmdline import Parser, dispatch, positive_int, positive_seconds
from repro.environment import environment
from repro.errors import ReproError
from repro.scenarios import ALL_STORAGES, SERVER_STORAGES
from repro.storages import StorageError, StorageSpec

PROG = "python -m repro.bench"
DEFAULT_OUT = Path("results/bench.json")
# 5 storages x 3 pairs = 30 runs. On this 2-core machine under a load of 7, one run took
# 0.4 s (journal) to 10 s (PostgreSQL), about 130 s for the whole bench; idle, it should stay
# well under two minutes. Three is the fewest runs whose median ignores one slow first run.
DEFAULT_REPETITIONS = 3


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Time the harness's default scenario (sequential-none-<storage>-w4-g24, "
        "the #5489 pattern) against the same work done by a plain script, interleaved, on "
        "every storage; write both times, their ratio and the workers' start-up as JSON. "
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
        f"{len(kinds) - len(skipped)} storages x {args.repetitions} repetitions",
        file=sys.stderr,
    )
    began = time.monotonic()
    done: list[records.StorageBench] = []
    for kind in kinds:
        if kind in skipped:
            print(f"skipped {kind}: {skipped[kind]}", file=sys.stderr)
            scenario = measure.default_scenario(kind).id
            done.append(records.StorageBench(kind, scenario, records.SKIPPED, skipped[kind]))
        else:
            done.append(
                measure.bench_storage(
                    kind,
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
            lines.append(f"{s.storage}: skipped")
            continue
        errors = sum(1 for r in s.harness + s.plain if r.error)
        lines.append(
            f"{s.storage}: harness {_seconds(s.harness_median_s)}, plain "
            f"{_seconds(s.plain_median_s)} (medians), ratio "
            f"{'-' if s.ratio is None else f'{s.ratio:.2f}'}, worker start-up "
            f"{_seconds(s.startup_median_s)}" + (f", {errors} failed runs" if errors else "")
        )
    over = bench.over_goal()
    if over:
        names = ", ".join(s.storage for s in over)
        lines.append(f"ratio above {bench.goal_ratio} (or not measured) on: {names}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return dispatch(PROG, {"bench": cmd_bench}, args)


if __name__ == "__main__":
    sys.exit(main())
