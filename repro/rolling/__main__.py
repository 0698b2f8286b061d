"""``python -m repro.rolling``: workers of two Optuna releases share one study.

``run`` measures every pair x creation order x seed policy x mode x storage and writes
``results/rolling.json`` and ``rolling.md``; ``section`` re-renders ``rolling.md`` (the report
section) from that JSON alone;
``create`` is what the creator's environment runs to create the study before concurrent
workers start.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from repro.cmdline import Parser, dispatch, positive_int, positive_seconds
from repro.errors import ReproError
from repro.rolling import plan, records, verdict
from repro.rolling.launch import Limits, run_case
from repro.timeline import envs
from repro.versions import version_key

PROG = "python -m repro.rolling"
MARKDOWN = "rolling.md"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    run = sub.add_parser(
        "run",
        help="measure pairs of releases sharing one study; write OUT/rolling.json",
        description="For each pair, creation order, seed policy, mode and storage: run half "
        "the workers in each release's environment (alternating, the creator's first) on a "
        "fresh storage, collect, and record. Exit status 1 when a case contradicts a forced "
        "expectation (the JSON is written all the same), 2 for bad input.",
    )
    run.add_argument(
        "--pair",
        action="append",
        type=_pair,
        default=[],
        metavar="A+B",
        help="two releases, e.g. 3.2.0+3.6.1 or 3.6.1+latest, repeatable (default: "
        + ", ".join(f"{a}+{b}" for a, b in plan.DEFAULT_PAIRS)
        + ")",
    )
    run.add_argument(
        "--storage",
        action="append",
        choices=plan.STORAGES,
        default=[],
        help=f"repeatable (default: {', '.join(plan.DEFAULT_STORAGES)})",
    )
    run.add_argument("--mode", action="append", choices=plan.MODES, default=[])
    run.add_argument("--seed-policy", action="append", choices=plan.SEED_POLICIES, default=[])
    run.add_argument(
        "-j", "--jobs", type=positive_int, default=2, help="cases at once (default: 2)"
    )
    run.add_argument(
        "--worker-timeout",
        type=positive_seconds,
        default=Limits.worker,
        help=f"seconds one worker may take before it is killed (default: {Limits.worker:g})",
    )
    run.add_argument(
        "--barrier-timeout",
        type=positive_seconds,
        default=Limits.barrier,
        help=f"concurrent: seconds a worker waits for the others (default: {Limits.barrier:g})",
    )
    run.add_argument("--out", type=Path, default=Path("results"), help="(default: results)")
    run.add_argument(
        "--envs",
        type=Path,
        default=envs.DEFAULT_ROOT,
        help="the per-release environment cache shared with the timeline (default: "
        ".nox/timeline-envs)",
    )
    run.add_argument(
        "--python",
        default=sys.executable,
        help="interpreter the environments are made from (default: this one)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="skip the cases OUT/rolling.json already measured (after an interrupt); cases "
        "the harness could not run are run again",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no line per case")

    section = sub.add_parser(
        "section", help="render OUT/rolling.md (the report section) from OUT/rolling.json alone"
    )
    section.add_argument("--out", type=Path, default=Path("results"))

    create = sub.add_parser("create", help="create the study in this environment (internal)")
    create.add_argument("--storage", required=True, metavar="URL")
    create.add_argument("--study", required=True)
    create.add_argument("--scenario", required=True, metavar="ID")
    return parser


def _pair(text: str) -> tuple[str, str]:
    try:
        return plan.parse_pair(text)
    except ReproError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _latest(pairs: Sequence[tuple[str, str]]) -> str | None:
    if not any(plan.LATEST in pair for pair in pairs):
        return None
    from repro.timeline import releases

    return releases.list_from_index()[-1]


def _check_servers(storages: Sequence[str], explicit: Sequence[str]) -> list[str]:
    """The storages whose server answers, by the rule of ``python -m repro run``: one asked
    for by --storage, or any in CI, must answer; otherwise it is left out with a line."""
    from repro.cli import _reachable
    from repro.scenarios import Scenario

    kept = _reachable([Scenario("sequential", "none", s) for s in storages], set(explicit))
    return [s.storage for s in kept]


def cmd_run(args: argparse.Namespace) -> int:
    from repro.rolling.prepare import prepare

    began = time.monotonic()
    storages = _check_servers(args.storage or plan.DEFAULT_STORAGES, args.storage)
    pairs = plan.resolve(args.pair or plan.DEFAULT_PAIRS, _latest(args.pair or plan.DEFAULT_PAIRS))
    uv = envs.find_uv()
    versions = sorted({v for pair in pairs for v in pair}, key=version_key)
    environments, pythons = [], {}
    for version in versions:
        record, python = prepare(args.envs, version, args.python, storages, uv)
        environments.append(record)
        made = "created" if record.created else "reused"
        print(f"Optuna {version}: environment {made} {record.error or ''}", file=sys.stderr)
        if record.error is None:
            pythons[version] = python
    usable = [p for p in pairs if set(p) <= set(pythons)]
    todo = plan.cases(
        usable,
        modes=args.mode or plan.MODES,
        seed_policies=args.seed_policy or plan.SEED_POLICIES,
        storages=storages,
    )
    limits = Limits(args.worker_timeout, args.barrier_timeout, Limits.collect)
    done: list[records.CaseRecord] = []
    path = args.out / records.FILENAME
    earlier = records.load(path) if path.exists() else None
    if args.resume and earlier is not None:
        measured = {c.case_id for c in earlier.cases if c.error is None}
        todo = [c for c in todo if c.id not in measured]

    def snapshot() -> records.RollingFile:
        return records.merge(
            earlier,
            records.RollingFile(
                cases=sorted(done, key=lambda c: order[c.case_id]),
                environments=environments,
                command=f"{PROG} " + " ".join(sys.argv[1:]),
                python=platform.python_version(),
                platform=platform.platform(),
                jobs=args.jobs,
                wall_seconds=round(time.monotonic() - began, 1),
                pairs=[list(p) for p in usable],
            ),
            replaced={c.id for c in todo},
        )

    order = {c.id: i for i, c in enumerate(todo)}
    print(f"{len(todo)} cases over {len(usable)} pairs, {args.jobs} at once", file=sys.stderr)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_case, case, pythons, limits) for case in todo]
        for future in as_completed(futures):
            case = future.result()
            # Only this thread appends and writes. Written after every case: an interrupt
            # loses the cases in flight, not the run.
            done.append(case)
            verdict.save(path, snapshot())
            if not args.quiet:
                print(
                    f"  [{len(done)}/{len(todo)}] {case.case_id}: {case.outcome} "
                    f"(missing={case.missing} dup={case.duplicates}, {case.seconds:g} s)",
                    file=sys.stderr,
                )
    final = snapshot()
    verdict.save(path, final)
    judged = verdict.verdicts(final.cases, final.pairs)
    for v in judged:
        print(f"{v.older} + {v.newer}: {v.verdict} ({v.advice})", file=sys.stderr)
        for problem in v.violations:
            print(f"  AGAINST EXPECTATION: {problem}", file=sys.stderr)
    print(
        f"wrote {path} and {write_markdown(args.out)} ({len(done)} cases, "
        f"{final.wall_seconds:g} s)",
        file=sys.stderr,
    )
    return 1 if any(v.violations for v in judged) else 0


def write_markdown(out: Path) -> Path:
    """OUT/rolling.md: the report section, rendered from OUT/rolling.json alone."""
    from repro.jsonfile import write_atomic
    from repro.rolling.section import section_from_json

    path = out / MARKDOWN
    write_atomic(path, "\n".join(section_from_json(out / records.FILENAME)) + "\n")
    return path


def cmd_section(args: argparse.Namespace) -> int:
    print(f"wrote {write_markdown(args.out)}", file=sys.stderr)
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    """Runs inside a release's environment: creates the study as a worker of that release
    would, recording the scenario so that ``collect`` needs only the storage."""
    from repro import workers
    from repro.cli import _shared_storage, _worker_scenario

    scenario = _worker_scenario(args.scenario)
    workers.create_study(_shared_storage(args.storage, args.study), args.study, scenario)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return dispatch(PROG, {"run": cmd_run, "section": cmd_section, "create": cmd_create}, args)


if __name__ == "__main__":
    sys.exit(main())
