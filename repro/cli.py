"""Command line: ``python -m repro run|list|report|worker|collect|audit|clean``."""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import itertools
import json
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from repro import results, targets
from repro.cmdline import (
    EXIT_BAD_INPUT,
    Parser,
    dispatch,
    error_line,
    positive_int,
    positive_seconds,
    prog_name,
)
from repro.environment import environment
from repro.errors import ReproError
from repro.paths import relativize
from repro.scenarios import (
    ALL_STORAGES,
    DEFAULT_SPACE,
    DEFAULT_WORKERS,
    MAX_GRID_POINTS,
    MAX_WORKERS,
    REMEDY_SINCE,
    SERVER_STORAGES,
    UPSTREAM,
    GridValue,
    Scenario,
    ScenarioError,
    SearchSpace,
    check_distinct,
    matrix,
    remedy_matrix,
    select,
    validate_space,
)
from repro.storages import StorageError, StorageSpec, redact

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


def _add_shape(parser: argparse.ArgumentParser) -> None:
    """The shape options `run` takes, and `list`, `worker` and `collect` with it, so that
    workers started by hand run the user's own space."""
    parser.add_argument(
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
    parser.add_argument(
        "--workers",
        type=_workers,
        default=DEFAULT_WORKERS,
        help=f"workers per run (default: {DEFAULT_WORKERS}); at most {MAX_WORKERS}, since "
        "each is a process with its own storage connection (PostgreSQL allows 100 by "
        "default), and at most the number of grid points, since a worker beyond them has "
        "no point of its own. The scenario id names it: w<workers>",
    )
    parser.add_argument(
        "--trials-per-worker",
        type=positive_int,
        help="trials each worker runs (default: grid size / workers, rounded up); another "
        "budget adds -t<trials> to the scenario id",
    )


def build_parser(prog: str = "python -m repro") -> argparse.ArgumentParser:
    parser = Parser(prog=prog, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser(
        "run",
        help="run scenarios with the installed Optuna and write results/optuna-<version>.json",
        description="Run scenarios against the Optuna installed in this environment. Each "
        "finished run is appended at once (fsync'd) to OUT/optuna-<version>.<id>.log.jsonl; "
        "the JSON file is derived from it at the end, on Ctrl-C or SIGTERM, or by the next "
        f"run or report after a crash. {results.REPLACEMENT_RULE} Before the first run, the "
        "workers x lanes must fit each server's free connections. Exit status: 0 every run "
        "measured; 1 a run recorded an error or could not remove its storage; 2 bad input, an "
        "unreadable results file (left untouched) or a server that cannot take the run, "
        "before any run; 3 the results could not be written (the line says what was kept); "
        "130 / 143 interrupted by SIGINT / SIGTERM (finished runs kept).",
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
        default=None,
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
    _add_shape(run)
    run.add_argument(
        "--fail-on-loss",
        action="store_true",
        help="exit 1 when any run lost or repeated grid points (for a CI step)",
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
        help="remedy scenarios beside the GridSampler matrix: 'default' runs "
        "BruteForceSampler on sqlite, the enqueued grid on sqlite, postgresql and redis (one "
        "storage per way of claiming a trial) and more trials on the #5489 pattern; 'all' "
        "every remedy, seed policy and storage (default: default)",
    )

    lst = sub.add_parser("list", help="print the scenario ids")
    lst.add_argument("--storage", action="append", choices=ALL_STORAGES, default=[])
    lst.add_argument("--remedies", choices=REMEDY_SETS, default="default")
    _add_shape(lst)

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
        help="a scenario id from `list` with the same shape options (its mode, seed "
        "policy, workers and grid)",
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
    _add_shape(wrk)

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
    _add_shape(col)
    col.set_defaults(space=None)

    aud = sub.add_parser(
        "audit",
        help="which grid points of any GridSampler study were never evaluated or repeated",
        description="Read a study (any release from 3.2.0 on wrote it, the installed Optuna "
        "reads it) and check every grid GridSampler stored with its trials: points never "
        "evaluated, points evaluated more than once (with their trial numbers), points "
        "reached only by FAIL or PRUNED trials, and how enqueued trials and other samplers' "
        "trials were counted. Trials are matched to points by their params, never by grid "
        "id. Reading creates and changes nothing. Exit status: 0 exact, 1 points missed or "
        "repeated, 2 bad input (no such storage or study, no GridSampler trials).",
    )
    aud.add_argument(
        "storage",
        metavar="STORAGE",
        help="sqlite:///PATH, journal:PATH, postgresql+psycopg2://..., mysql+pymysql://... "
        "or redis://...",
    )
    which = aud.add_mutually_exclusive_group(required=True)
    which.add_argument("--study", help="the study to audit")
    which.add_argument("--all-studies", action="store_true", help="every study in STORAGE")
    aud.add_argument("--json", action="store_true", help="print one JSON object instead")
    aud.add_argument(
        "--missing-only",
        action="store_true",
        help="exit 1 only for points never evaluated (after a repair, repeated points stay)",
    )
    aud.add_argument(
        "--enqueue-missing",
        action="store_true",
        help="show the missing points it would enqueue (dry run); with --yes enqueue each "
        "once (a second call adds nothing) and print how to run them",
    )
    aud.add_argument("--yes", action="store_true", help="with --enqueue-missing: write")
    aud.add_argument(
        "--redis-prefix",
        metavar="PREFIX",
        help="the key prefix of a Redis journal (default: the one `worker` used for --study "
        "if it has keys, else Optuna's default, empty)",
    )

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
        "with SIGKILL, a server that died); what a live run on this machine holds (its pid is "
        "in the name) is not listed. Removes them only with --yes, and then only "
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
    chosen = select(_shaped(base, args), getattr(args, "scenario", []))
    if getattr(args, "verdict", False):
        return [s for s in chosen if s == UPSTREAM]
    return chosen


def _shaped(base: list[Scenario], args: argparse.Namespace) -> list[Scenario]:
    """``base`` in the shape the options give (--space, --workers, --trials-per-worker)."""
    space = getattr(args, "space", None) or DEFAULT_SPACE
    workers = getattr(args, "workers", DEFAULT_WORKERS)
    grid = math.prod(len(values) for _, values in space)
    if workers > grid:
        raise ScenarioError(
            f"--workers {workers} is more than the {grid} grid points: a worker beyond them has "
            f"no point of its own (use --workers {grid} or fewer, or a larger --space)"
        )
    return [
        dataclasses.replace(
            s,
            workers=workers,
            search_space=space,
            trials_per_worker=getattr(args, "trials_per_worker", None),
        )
        for s in base
    ]


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


# Exit statuses of `run` and `report` beyond 0 and 2 (bad input): docs/faults.md has the table.
EXIT_RUN_ERRORS = 1
EXIT_UNWRITTEN = 3


DEFAULT_REPETITIONS = 2


def _differs_from_typed(
    args: argparse.Namespace,
    typed_repetitions: bool,
    scenarios: Sequence[Scenario],
    runs_each: dict[str, int],
) -> list[str]:
    """One line for each way what runs differs from what was typed: scenarios whose outcome
    the code forces run --forced-runs times whatever -r says, and a -s pattern meant for the
    GridSampler matrix also matches the remedy scenarios."""
    out = []
    forced = [s.id for s in scenarios if runs_each[s.id] != args.repetitions]
    if typed_repetitions and forced:
        out.append(
            f"note: {len(forced)} of {len(scenarios)} scenarios have an outcome the code forces "
            f"and run {args.forced_runs} time(s) each, not -r {args.repetitions} "
            f"(--forced-runs {args.repetitions} runs them as often), e.g. {forced[0]}"
        )
    remedy = [s.id for s in scenarios if s.remedy != "grid"]
    if args.scenario and remedy and any(s.remedy == "grid" for s in scenarios):
        out.append(
            f"note: -s also matched {len(remedy)} remedy scenarios ({', '.join(remedy[:3])}"
            f"{', ...' if len(remedy) > 3 else ''}); --remedies none leaves them out"
        )
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from repro.fork import STOP_SIGNALS, Interrupted, note_signals, raise_on_signals

    raise_on_signals()
    try:
        return _run(args)
    except Interrupted as exc:
        note_signals()  # this line is the last word: a second Ctrl-C cannot cut it short
        print(f"{exc} before the first run: nothing written", file=sys.stderr)
        return 128 + exc.signum
    finally:
        # The run is over and its status decided. Ignored, not noted: Python restores the
        # default action of a signal it handles while it exits, and a Ctrl-C then would kill
        # the process and replace the status.
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)


def _run(args: argparse.Namespace) -> int:
    check_out(args.out)
    typed_repetitions = args.repetitions is not None
    if not typed_repetitions:
        args.repetitions = DEFAULT_REPETITIONS
    scenarios = _scenarios(args)
    if args.verdict and not scenarios:
        print(f"no #5489 pattern ({UPSTREAM.id}) among the chosen scenarios", file=sys.stderr)
        return 0
    # Imported here so that `list` and `report` work without Optuna installed.
    from repro import _compat, execution, expectations, services
    from repro.fork import Interrupted, check_interrupted, note_signals

    version = _compat.OPTUNA_VERSION
    path = results.results_path(args.out, version)
    # Before anything runs: fold what a dead run left, and refuse a results file this code
    # cannot read (corrupt, or a newer schema) with one line, leaving it untouched.
    try:
        results.recover(args.out)
    except OSError as exc:
        return _unwritten(
            args.prog,
            f"cannot fold the log a dead run left in {args.out} ({_why(exc)}): nothing ran; "
            "the log stays for the next run or report",
        )
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
        "command": relativize("python -m repro " + " ".join(sys.argv[1:])),
        "repetitions": args.repetitions,
        "forced_runs": args.forced_runs,
        "jobs": args.jobs,
        "target": targets.active(),
    }
    runs_each = {
        s.id: expectations.runs_needed(version, s, args.repetitions, args.forced_runs)
        for s in scenarios
    }
    _check_connections(scenarios, min(args.jobs, sum(runs_each.values())))
    for line in _differs_from_typed(args, typed_repetitions, scenarios, runs_each):
        print(line, file=sys.stderr)
    began = time.monotonic()
    interrupted: Interrupted | None = None
    unsaved: OSError | None = None
    with services.alive_marker():
        try:
            journal = results.Journal.start(args.out, version, header)
        except OSError as exc:
            return _unwritten(
                args.prog,
                f"cannot write the run's log in {args.out} ({_why(exc)}): nothing ran, "
                "nothing written",
            )
        try:
            # Inside the try: from the log's start on, an interrupt goes to the fold below.
            versions = ", ".join(f"{k} {v}" for k, v in sorted(header["packages"].items()))
            print(
                f"Optuna {version} (python {env['python']}, {versions}): {len(scenarios)} "
                f"scenarios, {sum(runs_each.values())} runs ({args.forced_runs} per forced "
                f"outcome, {args.repetitions} per timing-dependent one), {args.jobs} lanes",
                file=sys.stderr,
            )
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
        except OSError as exc:
            # The log could not take a finished run (disk full): what it holds is kept.
            unsaved = exc
            runs = journal.runs()
        # The write, once begun, finishes, and so do the lines after it: a signal from now
        # on is reported by them.
        noted = note_signals()
        try:
            folded = results.fold(
                args.out,
                version,
                journal,
                order=[s.id for s in scenarios],
                wall_seconds=round(time.monotonic() - began, 1),
            )
        except OSError as exc:
            journal.close()
            return _unwritten(
                args.prog,
                f"cannot write {path} ({_why(exc)}): the {len(runs)} finished runs of this "
                f"invocation stay in {journal.path.name}, which the next run or report "
                f"into {args.out} folds in",
            )
        journal.close()
    from repro.expectations import known_fault

    failed = [r for r in runs if r.error and not known_fault(r, version)]
    untidy = [r for r in runs if r.teardown_error]
    where = f"{folded.results.run_count if folded.results else 0} runs in the file"
    print(
        f"wrote {path} (kept {folded.kept} of this invocation's {folded.fresh} runs, "
        f"{len(failed)} with errors, {where}, {time.monotonic() - began:.1f}s)"
        if folded.written
        else f"{path} unchanged (this invocation kept no run)",
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
    print(_loss_table(runs), file=sys.stderr)
    if unsaved is not None:
        return _unwritten(
            args.prog,
            f"cannot append to the run's log ({_why(unsaved)}): kept the {len(runs)} runs it "
            f"holds in {path}; the runs measured after that are lost",
        )
    if interrupted is None and noted:
        interrupted = Interrupted(noted[0])
        print(f"{interrupted} during the final write, which completed", file=sys.stderr)
    if interrupted is not None:
        kept = (
            f"kept the {folded.kept} finished runs in {path}"
            if folded.kept
            else f"no run had finished: nothing written ({path} unchanged)"
        )
        print(f"{interrupted}: {kept}, removed the storages of the runs under way", file=sys.stderr)
        return 128 + interrupted.signum
    # A run that recorded an error is never counted as lost points (docs/faults.md).
    lossy = args.fail_on_loss and any(_lost(r) for r in runs)
    return EXIT_RUN_ERRORS if failed or untidy or lossy else 0


def _lost(run: results.RunRecord) -> bool:
    """Whether a run that measured without an error missed or repeated a point."""
    return not run.error and bool(run.missing or run.duplicates)


def _loss_table(runs: Sequence[results.RunRecord]) -> str:
    """Per scenario, in run order: of the runs that finished without an error, those that lost
    points (missed or repeated any) and the mean number of points never evaluated; runs that
    recorded an error are counted apart, never as lost points."""
    by: dict[str, list[results.RunRecord]] = {}
    for r in runs:
        by.setdefault(r.scenario, []).append(r)
    rows = [("scenario", "runs that lost points", "mean missing", "runs with errors")]
    for scenario, group in by.items():
        measured = [r for r in group if not r.error]
        mean = f"{sum(r.missing for r in measured) / len(measured):.1f}" if measured else "-"
        rows.append(
            (
                scenario,
                f"{sum(1 for r in measured if _lost(r))} of {len(measured)}",
                mean,
                str(len(group) - len(measured)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _unwritten(prog: str, line: str) -> int:
    print(error_line(prog, line), file=sys.stderr)
    return EXIT_UNWRITTEN


def _check_connections(scenarios: Sequence[Scenario], lanes: int) -> None:
    """Workers x lanes must fit each server's free connections (asked of the server), so
    that no run fails with "too many clients" and no other client of the server is refused."""
    from repro import services

    needs: dict[str, tuple[int, int]] = {}
    for s in scenarios:
        if s.storage in SERVER_STORAGES:
            needs[s.storage] = (max(lanes, 1), max(needs.get(s.storage, (0, 0))[1], s.workers))
    for reason in services.check_connections(needs):
        print(f"connections not checked: {reason}", file=sys.stderr)


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


def _worker_scenario(scenario_id: str, args: argparse.Namespace | None = None) -> Scenario:
    """The scenario `worker` runs under ``scenario_id``: one of the matrix in the shape the
    options give (without ``args``, the default shape)."""
    shaped = _shaped(matrix(), args) if args is not None else matrix()
    scenario = next((s for s in shaped if s.id == scenario_id), None)
    if scenario is None:
        raise ScenarioError(
            f"unknown scenario {scenario_id!r} for this shape; see `list` with the same "
            "--space, --workers and --trials-per-worker"
        )
    return scenario


def cmd_worker(args: argparse.Namespace) -> int:
    from repro import _compat, runner, workers

    scenario = _worker_scenario(args.scenario, args)
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
    try:
        study = workers.read_study(spec, args.study)
    except StorageError as exc:  # a study of the user's own scripts, most likely
        raise StorageError(
            f"{exc}; `audit {redact(args.storage)} --study {args.study}` reads any GridSampler "
            "study"
        ) from None
    # Measured against the grid the study recorded, which its workers were given.
    args.space = validate_space({name: values for name, values in study.search_space})
    scenario = _worker_scenario(study.scenario_id, args)
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
        else f"{record.missing} grid points never evaluated, {len(record.duplicated_points)} "
        f"points evaluated more than once ({record.duplicates} extra evaluations)"
    )
    workers_seen = sorted({t.worker for t in study.trials if t.worker is not None})
    print(
        f"{args.study} ({record.scenario}, workers {workers_seen}): "
        f"{record.complete} complete trials; {verdict}",
        file=sys.stderr,
    )
    points = _grid_points(scenario.search_space)
    if record.missing_points:
        missing = ", ".join(json.dumps(points[key]) for key in record.missing_points)
        print(f"  never evaluated: {missing}", file=sys.stderr)
    for dup in record.duplicated_points:
        print(
            f"  evaluated more than once: {json.dumps(points.get(dup['point'], dup['point']))} "
            f"by trials {', '.join(map(str, dup['trials']))}",
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


def _grid_points(space: SearchSpace) -> dict[str, dict[str, GridValue]]:
    """Every point of ``space`` as {param: value}, by its metrics key."""
    from repro.metrics import point_key

    names = [name for name, _ in space]
    points = [dict(zip(names, p)) for p in itertools.product(*(v for _, v in space))]
    return {point_key(p): p for p in points}


def cmd_audit(args: argparse.Namespace) -> int:
    from repro.audit import read, repair, report

    if args.yes and not args.enqueue_missing:
        raise ReproError("--yes only goes with --enqueue-missing")
    spec = read.storage_spec(args.storage, args.study, args.redis_prefix)
    studies = read.read(spec, args.study)
    audit = report.build(spec.redacted, studies, all_studies=args.all_studies)
    if not args.enqueue_missing:
        if args.json:
            print(json.dumps(audit.to_json()))
        else:
            print(report.render(audit, args.missing_only))
        return 1 if audit.lost(args.missing_only) else 0
    todo = repair.plan(audit)
    for warning in audit.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if todo.empty:
        print("nothing to enqueue: no grid point is missing without a waiting trial")
        return 0
    for study, points in todo.points.items():
        for point in points:
            print(f"{study}\t{json.dumps(point)}")
    total = sum(len(p) for p in todo.points.values())
    if not args.yes:
        print(f"would enqueue {total} points (dry run); --yes enqueues them", file=sys.stderr)
        return 0
    waiting = repair.apply(spec, todo)
    command = f"{args.prog} audit {redact(args.storage)}"
    for study, count in waiting.items():
        print(f"enqueued {len(todo.points[study])} points in {study!r}", file=sys.stderr)
        print(repair.instructions(spec, study, count, f"{command} --study {study}"))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    for scenario in _scenarios(args):
        print(scenario.id)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from repro import report

    try:
        results.recover(args.results)
    except OSError as exc:
        print(
            f"not folded: the log a dead run left in {args.results} ({_why(exc)}); it stays "
            "for the next run or report",
            file=sys.stderr,
        )
    skipped: list[str] = []
    files = results.load_all(args.results, skipped)
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    if not files and not skipped:
        raise ReproError(
            f"no optuna-*.json in {args.results}; run `nox -s repro` or `python -m repro run` first"
        )
    if not files:
        return EXIT_BAD_INPUT
    out = args.out or args.results / "report.md"
    try:
        # The chart first: the report names it only when it is there.
        try:
            from repro.report.chart import CHART_NAME, write_chart

            write_chart(files, out.parent / CHART_NAME)
            print(f"wrote {out.parent / CHART_NAME}", file=sys.stderr)
        except ImportError:
            print(
                "chart not updated: matplotlib is not installed (`nox -s report` has it)",
                file=sys.stderr,
            )
        report.write_dir(args.results, out, files=files)
        print(f"wrote {out} from {len(files)} results files", file=sys.stderr)
        readme = report.update_readme(out, files)
        if readme:
            print(f"wrote the findings block of {readme.name}", file=sys.stderr)
    except OSError as exc:
        # Each file is written whole or not at all; the results are only read.
        return _unwritten(
            args.prog,
            f"cannot write the report in {out.parent} ({_why(exc)}): the files it could not "
            f"write are as they were; the results in {args.results} are unchanged",
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
    alive = services.live_runs()
    # What a live run on this machine holds is in use, not left behind.
    live = services.live_pids()
    in_use = [(k, n) for k, n in found if services.owner_of(n) in live or services.in_use(n)]
    found = [item for item in found if item not in in_use]
    for kind, name in found:
        print(f"{kind}\t{name}")
    if in_use:
        owners = sorted({str(services.owner_of(n)) for _, n in in_use})
        print(
            f"{len(in_use)} in use by live processes (pid {', '.join(owners)}), not listed",
            file=sys.stderr,
        )
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
    prog = prog_name("python -m repro")
    args = build_parser(prog).parse_args(argv)
    args.prog = prog
    handlers = {
        "run": cmd_run,
        "list": cmd_list,
        "report": cmd_report,
        "worker": cmd_worker,
        "collect": cmd_collect,
        "clean": cmd_clean,
        "audit": cmd_audit,
    }
    return dispatch(prog, handlers, args)


if __name__ == "__main__":
    sys.exit(main())
