"""``python -m repro.upstream``: write the upstream bug report bundle, record the minimal
reproduction's output, or gather CI's matrix results."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from repro.cmdline import Parser, dispatch, positive_int
from repro.upstream import bundle, collect, script_run

PROG = "python -m repro.upstream"
RESULTS = Path("results")


def cmd_write(args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else args.results / "upstream"
    done = bundle.write(args.results, out, args.new_issue)
    if done.premise_failed is not None:
        print(f"{PROG}: no issue written: {done.premise_failed}", file=sys.stderr)
        return 0
    for note in done.notes:
        print(f"left out: {note}", file=sys.stderr)
    for path in done.files:
        print(f"wrote {path} ({path.stat().st_size} bytes)", file=sys.stderr)
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    found = script_run.record(args.results, args.runs)
    print(
        f"recorded {len(found.outputs)} runs of {found.script} on Optuna {found.optuna} in "
        f"{script_run.record_path(args.results)}",
        file=sys.stderr,
    )
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    for path in collect.collect(args.artifacts, args.results):
        print(f"collected {path}", file=sys.stderr)
    return 0


def parser() -> Parser:
    top = Parser(prog=PROG, description=__doc__)
    sub = top.add_subparsers(dest="command", required=True, parser_class=Parser)
    write = sub.add_parser("write", help="write results/upstream/ from the JSON files alone")
    write.add_argument("--results", type=Path, default=RESULTS, help="default: results")
    write.add_argument("--out", type=Path, help="default: RESULTS/upstream")
    write.add_argument(
        "--new-issue",
        type=positive_int,
        metavar="N",
        help="the new issue's number, once filed: the #5489 comment then links it",
    )
    record = sub.add_parser(
        "record-script",
        help=f"run results/scripts/{script_run.SCRIPT} with this interpreter's Optuna and "
        "record its output",
    )
    record.add_argument("--results", type=Path, default=RESULTS, help="default: results")
    record.add_argument("--runs", type=positive_int, default=3, help="default: 3")
    gather = sub.add_parser("collect", help="copy CI artifacts' changed JSON into RESULTS")
    gather.add_argument("artifacts", type=Path, help="one directory per downloaded artifact")
    gather.add_argument("--results", type=Path, default=RESULTS, help="default: results")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handlers = {"write": cmd_write, "record-script": cmd_record, "collect": cmd_collect}
    return dispatch(PROG, handlers, args)


if __name__ == "__main__":
    sys.exit(main())
