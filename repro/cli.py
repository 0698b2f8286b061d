"""Command line: ``python -m repro run|list|report|worker|collect``."""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from repro import results, targets
from repro.cmdline import EXIT_BAD_INPUT, Parser, dispatch, positive_int, positive_seconds
from repro.environment import environment
from repro.errors import ReproError
from repro.scenarios import (
    ALL_STORAGES,
    DEFAULT_SPACE,
    DEFAULT_WORKERS,
    MAX_GRID_POINTS,
    MAX_WORKERS,
    REMEDY_SINCE,
    SERVER_STORAGES,
    UPSTREAM,
    Scenario,
    ScenarioError,
    SearchSpace,
    check_distinct,
    matrix,
    remedy_matrix,
    select,
    validate_space,
)
from repro.storages import StorageError, StorageSpec

DEFAULT_GRID = " x ".join(str(len(values)) for _, values in DEFAULT_SPACE)

REMEDY_SETS = ("default", "all", "none")


def _space(text: str) -> SearchSpace:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"search space is not JSON ({exc.msg})") from None
    try:
        space = validate_space(data)
        check_distinct(space)
    except ScenarioError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return space


def _workers(text: str) -> int:
    value = positive_int(text)
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{value} is above the bound of {MAX_WORKERS} workers")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m repro", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser(
        "run",
        help="run scenarios with the installed Optuna and write results/optuna-<version>.json",
        description="Run scenarios against the Optuna installed in this environment. Each "
        "finished run is appended at once (fsync'd) to OUT/optuna-<version>.<id>.log.jsonl; "
        "the JSON file is derived from it at the end, on Ctrl-C or SIGTERM (exit 130 / 143), "
        "or by the next run or report after a crash. Merge rule, per scenario: runs that "
        "measured something replace the earlier runs of that scenario; runs that measured "
        "nothing (an error and no trial read) never replace measured ones; other scenarios' "
        "runs are kept, also those of a concurrent run into the same folder. Exit status 1 "
        "if any run recorded an error or could not remove its storage, 2 for bad input or an "
        "unreadable results file (left untouched).",
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
        "-r",
        "--repetitions",
        type=positive_int,
        default=2,
        help="runs per scenario whose outcome depends on timing (the expectation table says "
        "'racy', or has no row for it, or the shape is not the default grid) (default: 2)",
    )
    run.add_argument(
        "--forced-runs",
        type=positive_int,
        default=1,
        help="runs per default-grid scenario whose outcome the code forces ('exact' or "
        "'loses-points'): one run decides it, up to the bound the report states; more only "
        "re-confirm it (default: 1)",
    )
    run.add_argument(
        "--storage",
        action="append",
        choices=ALL_STORAGES,
        default=[],
        help="storage kind, repeatable (default: all; the server kinds use this machine's "
        "services or $REPRO_POSTGRESQL_URL, $REPRO_MYSQL_URL, $REPRO_REDIS_URL)",
    )
    run.add_argument(
        "--no-services",
        action="store_true",
        help="skip postgresql, mysql and redis (says what it skipped). Without it a server "
        "that does not answer is skipped with a line saying so, except in CI ($CI or "
        "REPRO_REQUIRE_SERVICES=1 set) and when --storage names it or a -s pattern selects "
        "only its scenarios: then it is an error (exit 2)",
    )
    run.add_argument(
        "--space",
        type=_space,
        metavar="JSON",
        help=f"custom search space, e.g. '{{\"x\": [0, 1, 2]}}' (default: {DEFAULT_GRID} grid). "
        f"At most {MAX_GRID_POINTS} grid points: each is a trial kept in the run record, and "
        "GridSampler reads every earlier trial for each new one. Each value once: values that "
        "compare equal (1, 1.0 and true; 0, 0.0, -0.0 and false) are refused, since Optuna "
        'records them as one choice and a perfect run would show a point missing; "1" and 1 '
        "are different values. The scenario id names the space: custom-<hash>",
    )
    run.add_argument(
        "--workers",
        type=_workers,
        default=DEFAULT_WORKERS,
        help=f"workers per run (default: {DEFAULT_WORKERS}); at most {MAX_WORKERS}, since "
        "each is a process with its own storage connection (PostgreSQL allows 100 by "
        "default), and at most the number of grid points, since a worker beyond them has "
        "no point of its own. The scenario id names it: w<workers>",
    )
    run.add_argument(
        "--trials-per-worker",
        type=positive_int,
        help="trials each worker runs (default: grid size / workers, rounded up); another "
        "budget adds -t<trials> to the scenario id",
    )
    run.add_argument(
        "-j",
        "--jobs",
        type=positive_int,
        default=2,
        help="runs in parallel lanes; each run keeps its own storage (default: 2)",
    )
    run.add_argument(
        "--timeout",
        type=positive_seconds,
        default=120.0,
        help="seconds one run may take, launching its workers included, before its workers "
        "are killed; a worker whose turn comes later is not started (default: 120)",
    )
    run.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        help="directory for the JSON results, checked for writing before anything runs "
        "(default: results)",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no per-run progress lines")
    run.add_argument(
        "--verdict",
        action="store_true",
        help=f"of the scenarios the other options choose, run only the #5489 pattern "
        f"({UPSTREAM.id}) and print its verdict; nothing if they do not choose it. `nox -s "
        "repro` does this for every version before any version's matrix",
    )
    run.add_argument(
        "--remedies",
        choices=REMEDY_SETS,
        default="default",
        help="remedy scenarios beside the GridSampler matrix (issue 12): 'default' runs "
        "BruteForceSampler on sqlite, the enqueued grid on sqlite, postgresql and redis (one "
        "storage per way of claiming a trial) and more trials on the #5489 pattern; 'all' "
        "every remedy, seed policy and storage (default: default)",
    )

    lst = sub.add_parser("list", help="print the scenario ids")
    lst.add_argument("--storage", action="append", choices=ALL_STORAGES, default=[])
    lst.add_argument("--remedies", choices=REMEDY_SETS, default="default")

    wrk = sub.add_parser(
        "worker",
        help="run one worker of a scenario in this process, against a shared storage URL",
        description="Run one worker by hand, e.g. on one of several hosts that share a "
        "database. Start workers 0..N-1 of the same --study and --scenario (one after another "
        "for a sequential scenario), then run `collect`.",
    )
    wrk.add_argument(
        "--storage",
        required=True,
        metavar="URL",
        help="sqlite:///PATH, postgresql://..., mysql+pymysql://..., redis://... or journal:PATH",
    )
    wrk.add_argument("--study", required=True, help="study name shared by all workers")
    wrk.add_argument(
        "--scenario",
        required=True,
        metavar="ID",
        help="a scenario id from `list` (its mode, seed policy, workers and grid)",
    )
    wrk.add_argument(
        "--worker-index",
        required=True,
        type=int,
        metavar="I",
        help="0 .. workers-1; picks the per-worker seed",
    )
    wrk.add_argument(
        "--barrier-timeout",
        type=positive_seconds,
        default=120.0,
        metavar="S",
        help="concurrent scenarios: seconds to wait at each round for the other workers, "
        "which meet through the storage (default: 120)",
    )

    col = sub.add_parser(
        "collect",
        help="metrics and a run record from a finished study",
        description="Read a study that `worker` processes ran and print its run record as "
        "JSON (and a one-line verdict on stderr). A study that is not there is an error "
        "(exit 2) that creates nothing. A --worker-index used by two processes gets a "
        "warning line and is listed in reused_worker_indexes.",
    )
    col.add_argument("--storage", required=True, metavar="URL")
    col.add_argument("--study", required=True)
    col.add_argument("--delete", action="store_true", help="delete the study afterwards")

    rep = sub.add_parser("report", help="render results/report.md from the JSON files alone")
    rep.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="directory holding optuna-*.json (default: results)",
    )
    rep.add_argument("--out", type=Path, help="report file (default: RESULTS/report.md)")

    cln = sub.add_parser(
        "clean",
        help="list (and with --yes remove) what interrupted runs left behind",
        description="List the databases repro_* (PostgreSQL, MariaDB/MySQL), the Redis keys "
        "repro:* and the scratch folders grid-repro-* that runs did not remove (a run killed "
        "with SIGKILL, a server that died). Removes them only with --yes, and then only "
        "while no run is alive on this machine (each run holds a lock file in the scratch "
        "dir's repro-runs/ while it lives).",
    )
    cln.add_argument("--yes", action="store_true", help="remove them (default: dry run)")
    return parser


def _scenarios(args: argparse.Namespace) -> list[Scenario]:
    storages = args.storage or ALL_STORAGES
    remedies = getattr(args, "remedies", "none")
    base = matrix(storages)
    if remedies != "none":
        base += remedy_matrix(storages, full=remedies == "all")
    if getattr(args, "no_services", False):
        skipped = sorted({s.storage for s in base if s.storage in SERVER_STORAGES})
        base = [s for s in base if s.storage not in SERVER_STORAGES]
        if not base:
            raise ScenarioError("--no-services leaves nothing to run: --storage names only servers")
        if skipped:
            print(f"skipped storages (--no-services): {', '.join(skipped)}", file=sys.stderr)
    space = getattr(args, "space", None) or DEFAULT_SPACE
    workers = getattr(args, "workers", DEFAULT_WORKERS)
    grid = math.prod(len(values) for _, values in space)
    if workers > grid:
        raise ScenarioError(
            f"--workers {workers} is more than the {grid} grid points: a worker beyond them has "
            f"no point of its own (use --workers {grid} or fewer, or a larger --space)"
        )
    shaped = [
        dataclasses.replace(
            s,
            workers=workers,
            search_space=space,
            trials_per_worker=getattr(args, "trials_per_worker", None),
        )
        for s in base
    ]
    chosen = select(shaped, getattr(args, "scenario", []))
    if getattr(args, "verdict", False):
        return [s for s in chosen if s == UPSTREAM]
    return chosen


def check_out(out: Path) -> None:
    """Fail before anything runs when the results could not be written at the end: ``out``
    must be a directory this process can write in, or one it can create."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ReproError(f"--out {out}: {existing} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        raise ReproError(f"--out {out}: cannot write in {existing} ({exc.strerror})") from None


def cmd_run(args: argparse.Namespace) -> int:
    check_out(args.out)
    scenarios = _scenarios(args)
    if args.verdict and not scenarios:
        print(f"no #5489 pattern ({UPSTREAM.id}) among the chosen scenarios", file=sys.stderr)
        return 0
    # Imported here so that `list` and `report` work without Optuna installed.
    from repro import _compat, execution, expectations, services
    from repro.fork import Interrupted, check_interrupted, interruptible

    version = _compat.OPTUNA_VERSION
    path = results.results_path(args.out, version)
    # Before anything runs: fold what a dead run left, and refuse a results file this code
    # cannot read (corrupt, or a newer schema) with one line, leaving it untouched.
    results.recover(args.out)
    if path.exists():
        results.load(path)
    env = environment()
    _compat.warm_up()
    scenarios = _reachable(scenarios, explicit=set(args.storage), patterns=args.scenario)
    absent = sorted({s.remedy for s in scenarios if not _compat.remedy_available(s.remedy)})
    if absent:
        print(
            f"not applicable on Optuna {version}: "
            + ", ".join(f"{r} (from {REMEDY_SINCE[r]})" for r in absent),
            file=sys.stderr,
        )
        scenarios = [s for s in scenarios if s.remedy not in absent]
        if not scenarios:
            return 0
    header = {
        "python": str(env["python"]),
        "platform": str(env["platform"]),
        "packages": dict(env["packages"]),  # type: ignore[call-overload]
        "command": "python -m repro " + " ".join(sys.argv[1:]),
        "repetitions": args.repetitions,
        "forced_runs": args.forced_runs,
        "jobs": args.jobs,
        "target": targets.active(),
    }
    runs_each = {
        s.id: expectations.runs_needed(version, s, args.repetitions, args.forced_runs)
        for s in scenarios
    }
    began = time.monotonic()
    interrupted: Interrupted | None = None
    with services.alive_marker():
        journal = results.Journal.start(args.out, version, header)
        versions = ", ".join(f"{k} {v}" for k, v in sorted(header["packages"].items()))
        print(
            f"Optuna {version} (python {env['python']}, {versions}): "
            f"{len(scenarios)} scenarios, {sum(runs_each.values())} runs ({args.forced_runs} "
            f"per forced outcome, {args.repetitions} per timing-dependent one), {args.jobs} lanes",
            file=sys.stderr,
        )
        try:
            with interruptible():
                runs = execution.run_all(
                    scenarios,
                    runs_each,
                    jobs=args.jobs,
                    timeout=args.timeout,
                    progress=not args.quiet,
                    journal=journal,
                )
                check_interrupted()
        except Interrupted as exc:
            interrupted = exc
            runs = journal.runs()
        # Never interrupted: the runs are in the log; a signal now would only delay the fold
        # to the next `run` or `report`.
        results.fold(
            args.out,
            version,
            journal,
            order=[s.id for s in scenarios],
            wall_seconds=round(time.monotonic() - began, 1),
        )
        journal.close()
    from repro.expectations import known_fault

    failed = [r for r in runs if r.error and not known_fault(r, version)]
    untidy = [r for r in runs if r.teardown_error]
    print(
        f"wrote {path} ({len(runs)} runs, {len(failed)} with errors, "
        f"{time.monotonic() - began:.1f}s)",
        file=sys.stderr,
    )
    for r in runs:
        if r.error:
            fault = known_fault(r, version)
            kind = f"known Optuna fault, {fault.name.split(':')[0]}" if fault else "ERROR"
            last = r.error.strip().splitlines()[-1]
            print(f"  {kind}: {r.scenario} r{r.repetition}: {last}", file=sys.stderr)
        if r.teardown_error:
            last = r.teardown_error.strip().splitlines()[-1]
            print(f"  TEARDOWN: {r.scenario} r{r.repetition}: {last}", file=sys.stderr)
    if interrupted is not None:
        print(
            f"{interrupted}: kept the {len(runs)} finished runs, removed the storages of the "
            "runs under way",
            file=sys.stderr,
        )
        return 128 + interrupted.signum
    return 1 if failed or untidy else 0


def services_required() -> bool:
    """In CI (or with REPRO_REQUIRE_SERVICES=1) a server that does not answer is an error;
    elsewhere the default run measures what this machine has and says what it skipped."""
    return bool(os.environ.get("CI")) or os.environ.get("REPRO_REQUIRE_SERVICES") == "1"


def _reachable(
    scenarios: list[Scenario], explicit: set[str], patterns: Sequence[str] = ()
) -> list[Scenario]:
    """Check every server the scenarios need, before any run, within 10 s each. A server
    asked for (by --storage, or by a -s pattern that selects only its scenarios), or any
    server in CI, must answer; otherwise an unreachable one is skipped with a line saying so."""
    from repro import services

    keep = list(scenarios)
    for kind in sorted({s.storage for s in scenarios} & set(SERVER_STORAGES)):
        try:
            services.check_reachable(StorageSpec(kind, services.server_url(kind)))
        except StorageError as exc:
            if kind in explicit or services_required():
                raise
            only_here = [p for p in patterns if _selects_only(keep, p, kind)]
            if only_here:
                raise StorageError(
                    f"{exc} (-s {only_here[0]!r} selects only {kind} scenarios)"
                ) from None
            print(
                f"skipped {kind} scenarios: {exc} (start it, or set "
                f"{services.ENV_VARS[kind]}; CI fails here instead)",
                file=sys.stderr,
            )
            keep = [s for s in keep if s.storage != kind]
    return keep


def _selects_only(scenarios: list[Scenario], pattern: str, kind: str) -> bool:
    """Whether every scenario ``pattern`` matches runs on storage ``kind``."""
    chosen = [s for s in scenarios if fnmatch.fnmatchcase(s.id, pattern)]
    return bool(chosen) and all(s.storage == kind for s in chosen)


def _shared_storage(url: str, study: str) -> StorageSpec:
    """A user-given storage URL; on Redis the study's keys live under their own prefix."""
    from repro import services
    from repro.storages import from_url

    spec = from_url(url)
    if spec.kind == "redis":
        prefix = f"{services.REDIS_PREFIX}{services.run_tag()}"
        spec = StorageSpec("redis", spec.location, namespace=f"{prefix}{study}")
    if spec.kind in SERVER_STORAGES:
        services.check_reachable(spec)
    return spec


def _worker_scenario(scenario_id: str) -> Scenario:
    """The scenario `worker` runs under ``scenario_id``: one of the default matrix."""
    scenario = next((s for s in matrix() if s.id == scenario_id), None)
    if scenario is None:
        raise ScenarioError(f"unknown scenario {scenario_id!r}; see `python -m repro list`")
    return scenario


def cmd_worker(args: argparse.Namespace) -> int:
    from repro import _compat, runner, workers

    scenario = _worker_scenario(args.scenario)
    if not 0 <= args.worker_index < scenario.workers:
        raise ScenarioError(f"--worker-index must be 0..{scenario.workers - 1}")
    spec = _shared_storage(args.storage, args.study)
    _compat.warm_up()
    workers.create_study(spec, args.study, scenario)
    plan = runner.worker_plan(
        scenario,
        spec,
        args.study,
        args.worker_index,
        args.barrier_timeout,
        storage_barrier=scenario.mode == "concurrent",
    )
    result = workers.run_worker(plan, None, time.perf_counter())
    print(
        f"worker {args.worker_index} of {args.scenario} on {spec.redacted}: done in "
        f"{result.elapsed_s:.2f}s, grid order {result.order_fingerprint}",
        file=sys.stderr,
    )
    print(json.dumps(result.to_json()))
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from repro import runner, workers

    spec = _shared_storage(args.storage, args.study)
    workers.require_study(spec, args.study)
    study = workers.read_study(spec, args.study)
    # Measured against the grid the study recorded, which its workers were given.
    space = validate_space({name: values for name, values in study.search_space})
    scenario = dataclasses.replace(_worker_scenario(study.scenario_id), search_space=space)
    record = runner.record(scenario, 0, study.trials, [], [], study_name=args.study)
    # Where the workers really ran, which the URL says and the scenario id only intends.
    record = dataclasses.replace(record, storage=spec.kind)
    reused = {i: p for i, p in study.processes.items() if len(p) > 1}
    for index, processes in reused.items():
        print(
            f"warning: worker index {index} was used by {len(processes)} processes "
            f"({', '.join(processes)}); start each worker with its own --worker-index",
            file=sys.stderr,
        )
    verdict = (
        "every grid point evaluated exactly once"
        if record.missing == record.duplicates == 0
        else f"{record.missing} grid points never evaluated, {record.duplicates} evaluated "
        "more than once"
    )
    workers_seen = sorted({t.worker for t in study.trials if t.worker is not None})
    print(
        f"{args.study} ({record.scenario}, workers {workers_seen}): "
        f"{record.complete} complete trials; {verdict}",
        file=sys.stderr,
    )
    # The run record as `run` writes it (RunRecord.from_json reads it back), plus what only
    # collect knows; "study" is the key this output had before it was a run record, kept for
    # the scripts that read it.
    only_collect = {
        "study": args.study,
        "reused_worker_indexes": {str(i): p for i, p in reused.items()},
    }
    print(json.dumps({**record.to_json(), **only_collect}, indent=1))
    if args.delete:
        workers.delete_study(spec, args.study)
        if spec.kind == "redis":
            from repro import services

            services.delete_keys(spec.location, spec.namespace)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for scenario in _scenarios(args):
        print(scenario.id)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from repro import report

    results.recover(args.results)
    skipped: list[str] = []
    files = results.load_all(args.results, skipped)
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    if not files and not skipped:
        raise SystemExit(
            f"repro: error: no optuna-*.json in {args.results}; run "
            "`nox -s repro` or `python -m repro run` first"
        )
    if not files:
        return EXIT_BAD_INPUT
    out = args.out or args.results / "report.md"
    report.write_dir(args.results, out, files=files)
    print(f"wrote {out} from {len(files)} results files", file=sys.stderr)
    try:
        from repro.report.chart import CHART_NAME, write_chart

        write_chart(files, out.parent / CHART_NAME)
        print(f"wrote {out.parent / CHART_NAME}", file=sys.stderr)
    except ImportError:
        print(
            "chart not updated: matplotlib is not installed (`nox -s report` has it)",
            file=sys.stderr,
        )
    return EXIT_BAD_INPUT if skipped else 0


def cmd_clean(args: argparse.Namespace) -> int:
    from repro import services

    found: list[tuple[str, str]] = []
    for kind in SERVER_STORAGES:
        try:
            services.check_reachable(StorageSpec(kind, services.server_url(kind)))
        except StorageError as exc:
            print(f"{kind}: not checked ({exc})", file=sys.stderr)
            continue
        found += [(kind, name) for name in services.leftovers(kind)]
    found += [("scratch", name) for name in services.scratch_leftovers()]
    for kind, name in found:
        print(f"{kind}\t{name}")
    alive = services.live_runs()
    if not found:
        print("nothing left behind", file=sys.stderr)
        return 0
    if not args.yes:
        print(f"{len(found)} leftovers; `--yes` removes them (dry run)", file=sys.stderr)
        return 0
    if alive:
        print(
            f"not removing anything: {len(alive)} run(s) still alive on this machine "
            f"(pid {', '.join(a.split('-')[0] for a in alive)}) may own these; "
            "wait for them or stop them, then clean again",
            file=sys.stderr,
        )
        return 1
    for kind, name in found:
        services.remove_leftover(kind, name)
    print(f"removed {len(found)} leftovers", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "run": cmd_run,
        "list": cmd_list,
        "report": cmd_report,
        "worker": cmd_worker,
        "collect": cmd_collect,
        "clean": cmd_clean,
    }
    return dispatch("repro", handlers, args)


if __name__ == "__main__":
    sys.exit(main())
