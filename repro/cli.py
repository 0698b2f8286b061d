"""Command line: ``python -m repro run|list|report``."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import NoReturn

from repro import results
from repro.scenarios import (
    DEFAULT_WORKERS,
    EMBEDDED_STORAGES,
    Scenario,
    ScenarioError,
    matrix,
    select,
    validate_space,
)

RECORDED_PACKAGES = (
    "numpy",
    "sqlalchemy",
    "alembic",
    "redis",
    "psycopg",
    "psycopg2-binary",
    "pymysql",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _space(text: str) -> dict[str, list[object]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"search space is not JSON ({exc.msg})") from None
    try:
        validate_space(data)
    except ScenarioError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return dict(data)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m repro", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser(
        "run",
        help="run scenarios with the installed Optuna and write results/optuna-<version>.json",
        description="Run scenarios against the Optuna installed in this environment. Results "
        "of the scenarios run replace earlier results of the same scenarios in the JSON file; "
        "other scenarios' results are kept. Exit status 1 if any run recorded an error.",
    )
    run.add_argument(
        "-s",
        "--scenario",
        action="append",
        default=[],
        metavar="PATTERN",
        help="scenario id or shell pattern, repeatable (default: all); see `python -m repro list`",
    )
    run.add_argument(
        "-r", "--repetitions", type=_positive, default=2, help="runs per scenario (default: 2)"
    )
    run.add_argument(
        "--storage",
        action="append",
        choices=EMBEDDED_STORAGES,
        default=[],
        help="storage kind, repeatable (default: sqlite and journal)",
    )
    run.add_argument(
        "--space",
        type=_space,
        metavar="JSON",
        help="custom search space, e.g. '{\"x\": [0, 1, 2]}' (default: 5 x 4 grid)",
    )
    run.add_argument(
        "--workers",
        type=_positive,
        default=DEFAULT_WORKERS,
        help=f"workers per run (default: {DEFAULT_WORKERS})",
    )
    run.add_argument(
        "--trials-per-worker",
        type=_positive,
        help="trials each worker runs (default: grid size / workers, rounded up)",
    )
    run.add_argument(
        "-j",
        "--jobs",
        type=_positive,
        default=2,
        help="runs in parallel lanes; each run keeps its own storage (default: 2)",
    )
    run.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        help="seconds one run may take before its workers are killed (default: 120)",
    )
    run.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        help="directory for the JSON results (default: results)",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no per-run progress lines")

    lst = sub.add_parser("list", help="print the scenario ids")
    lst.add_argument("--storage", action="append", choices=EMBEDDED_STORAGES, default=[])

    rep = sub.add_parser("report", help="render results/report.md from the JSON files alone")
    rep.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="directory holding optuna-*.json (default: results)",
    )
    rep.add_argument("--out", type=Path, help="report file (default: RESULTS/report.md)")
    return parser


def _scenarios(args: argparse.Namespace) -> list[Scenario]:
    base = matrix(args.storage or EMBEDDED_STORAGES)
    space = getattr(args, "space", None)
    workers = getattr(args, "workers", DEFAULT_WORKERS)
    trials = getattr(args, "trials_per_worker", None)
    if space is not None or workers != DEFAULT_WORKERS or trials is not None:
        frozen = validate_space(space) if space is not None else base[0].search_space
        base = [
            Scenario(
                mode=s.mode,
                seed_policy=s.seed_policy,
                storage=s.storage,
                workers=workers,
                search_space=frozen,
                trials_per_worker=trials,
                label="custom" if space is not None else "",
            )
            for s in base
        ]
    return select(base, getattr(args, "scenario", []))


def environment() -> dict[str, object]:
    packages = {}
    for name in RECORDED_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
    }


def cmd_run(args: argparse.Namespace) -> int:
    scenarios = _scenarios(args)
    # Imported here so that `list` and `report` work without Optuna installed.
    from repro import _compat, execution

    path = results.results_path(args.out, _compat.OPTUNA_VERSION)
    earlier: list[results.RunRecord] = []
    if path.exists():
        try:
            earlier = results.load(path).runs
        except (ValueError, TypeError, KeyError) as exc:
            raise SystemExit(
                f"repro: error: {path} is not a results file ({exc}); move it away "
                "or pass --out to write elsewhere"
            ) from None
    env = environment()
    versions = ", ".join(f"{k} {v}" for k, v in sorted(dict(env["packages"]).items()))  # type: ignore[call-overload]
    print(
        f"Optuna {_compat.OPTUNA_VERSION} (python {env['python']}, {versions}): "
        f"{len(scenarios)} scenarios x {args.repetitions} repetitions, {args.jobs} lanes",
        file=sys.stderr,
    )
    _compat.warm_up()
    began = time.monotonic()
    runs = execution.run_all(
        scenarios, args.repetitions, jobs=args.jobs, timeout=args.timeout, progress=not args.quiet
    )
    fresh = {r.scenario for r in runs}
    record = results.ResultsFile(
        optuna_version=_compat.OPTUNA_VERSION,
        python=str(env["python"]),
        platform=str(env["platform"]),
        packages=dict(env["packages"]),  # type: ignore[call-overload]
        runs=[r for r in earlier if r.scenario not in fresh] + runs,
        command="python -m repro " + " ".join(sys.argv[1:]),
        repetitions=args.repetitions,
        jobs=args.jobs,
        wall_seconds=round(time.monotonic() - began, 1),
    )
    results.save(path, record)
    from repro.expectations import known_fault

    failed = [r for r in runs if r.error and not known_fault(r, _compat.OPTUNA_VERSION)]
    print(
        f"wrote {path} ({len(runs)} runs, {len(failed)} with errors, {record.wall_seconds:.1f}s)",
        file=sys.stderr,
    )
    for r in runs:
        if r.error:
            fault = known_fault(r, _compat.OPTUNA_VERSION)
            kind = f"known Optuna fault, {fault.name.split(':')[0]}" if fault else "ERROR"
            last = r.error.strip().splitlines()[-1]
            print(f"  {kind}: {r.scenario} r{r.repetition}: {last}", file=sys.stderr)
    return 1 if failed else 0


def cmd_list(args: argparse.Namespace) -> int:
    for scenario in _scenarios(args):
        print(scenario.id)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from repro import report

    files = results.load_all(args.results)
    if not files:
        raise SystemExit(
            f"repro: error: no optuna-*.json in {args.results}; run "
            "`nox -s repro` or `python -m repro run` first"
        )
    out = args.out or args.results / "report.md"
    results.write_atomic(out, report.render(files))
    print(f"wrote {out} from {len(files)} results files", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        handler = {"run": cmd_run, "list": cmd_list, "report": cmd_report}[args.command]
        return handler(args)
    except ScenarioError as exc:
        print(f"repro: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
