"""A before/after sitting for the time to a verdict: warm ``nox -s repro`` in two
checkouts of this repository, alternating (before, after, before, after, ...), on one machine in
one sitting, so that both sides see the same load. For each command: its wall time, and from
the results files it wrote, per Optuna version the lanes' wall time, the runs, the seconds the
runs took per storage, the expectation checks that failed and each forced scenario's outcomes.
``render`` prints the table of the closing note from the JSON alone.

    python -m repro.bench.sitting run --checkout before=../old --checkout after=. --pairs 2
    python -m repro.bench.sitting render results/sitting.json
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from repro import expectations, results
from repro.cmdline import Parser, dispatch, positive_int
from repro.errors import ReproError
from repro.jsonfile import from_fields, load_json, write_json
from repro.scenarios import ALL_STORAGES
from repro.versions import version_key

PROG = "python -m repro.bench.sitting"
SCHEMA = 1
DEFAULT_OUT = Path("results/sitting.json")


@dataclass(frozen=True)
class VersionTimes:
    """What one ``repro run`` of one Optuna version wrote, as read back from its file."""

    version: str
    wall_seconds: float  # the lanes' wall time, as `repro run` recorded it
    runs: int
    # Seconds the runs took, summed per storage (lanes overlap, so these add up to more
    # than wall_seconds: they say where the work went, not how long one waited).
    storage_seconds: dict[str, float]
    violations: int  # runs that contradict their expectation row
    # Per scenario whose outcome the code forces: each run's outcome (exact | lost | error).
    forced: dict[str, list[str]]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VersionTimes:
        return from_fields(cls, data)


@dataclass(frozen=True)
class Command:
    label: str
    pair: int
    seconds: float  # wall time of the whole `nox -s repro`, environments reused
    exit_code: int
    # CPU seconds (user + system) of the command and every process under it that was waited
    # for: the work itself, which load from elsewhere changes far less than the wall time.
    # The servers' own CPU is not in it.
    cpu_seconds: float = 0.0
    versions: list[VersionTimes] = field(default_factory=list)
    # CPU seconds the whole machine spent while the command ran (/proc/stat: every process,
    # the database servers included, and whatever else ran then), and the cores it has: how
    # busy the machine was, which bounds how much faster the same work could go.
    machine_cpu_seconds: float | None = None
    cores: int | None = None
    # Per Optuna version, seconds from the command's start to its first "#5489 verdict" line:
    # the time to a verdict a user waits for, read off the output as it streams.
    verdict_seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Command:
        versions = [VersionTimes.from_json(v) for v in data.get("versions", [])]
        return from_fields(cls, data, versions=versions)


@dataclass(frozen=True)
class Sitting:
    checkouts: dict[str, str]  # label -> checkout_label(label), in the order they alternate
    commits: dict[str, str]
    command: str
    commands: list[Command]
    schema: int = SCHEMA

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sitting:
        commands = [Command.from_json(c) for c in data.get("commands", [])]
        return from_fields(cls, data, commands=commands)


def _outcome(run: results.RunRecord) -> str:
    if run.error:
        return "error"
    return "lost" if run.missing else "exact"


def _forced(version: str, run: results.RunRecord) -> bool:
    try:
        if run.remedy == "grid":
            return expectations.expected(version, run.mode, run.seed_policy).outcome in (
                expectations.FORCED
            )
        row = expectations.remedy_expected(
            version, run.remedy, run.mode, run.seed_policy, run.storage
        )
    except expectations.NoExpectation:
        return False
    return row.outcome == "exact"


def version_times(f: results.ResultsFile) -> VersionTimes:
    version = f.optuna_version
    seconds = {k: round(sum(r.seconds for r in f.runs if r.storage == k), 1) for k in ALL_STORAGES}
    forced: dict[str, list[str]] = {}
    for run in sorted(f.runs, key=lambda r: (r.scenario, r.repetition)):
        if _forced(version, run):
            forced.setdefault(run.scenario, []).append(_outcome(run))
    return VersionTimes(
        version=version,
        wall_seconds=f.wall_seconds,
        runs=len(f.runs),
        storage_seconds={k: v for k, v in seconds.items() if v},
        violations=sum(1 for r in f.runs if expectations.violations(r, version)),
        forced=forced,
    )


def checkout_label(label: str) -> str:
    """How the sitting names a checkout in its JSON: by its label (the commit is beside it),
    never by the folder it was in on the machine that ran it."""
    return f"<checkout {label}>"


def _git_commit(path: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def _checkouts(values: Sequence[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for value in values:
        label, sep, path = value.partition("=")
        if not sep or not label or not path:
            raise ReproError(f"--checkout {value!r}: give LABEL=PATH, e.g. before=../old")
        if not (Path(path) / "noxfile.py").is_file():
            raise ReproError(f"--checkout {value!r}: {path} has no noxfile.py")
        if label in out:
            raise ReproError(f"--checkout {value!r}: label {label!r} given twice")
        out[label] = Path(path).resolve()
    if len(out) < 2:
        raise ReproError(
            "give two checkouts to compare: --checkout before=PATH --checkout after=PATH"
        )
    return out


VERDICT_LINE = re.compile(r"#5489 verdict, Optuna (\S+): ")


def verdict_times(stamped: Iterable[tuple[float, str]]) -> dict[str, float]:
    """Per Optuna version, the time stamp of its first verdict line among ``(seconds, line)``."""
    first: dict[str, float] = {}
    for seconds, line in stamped:
        if (m := VERDICT_LINE.match(line)) and m.group(1) not in first:
            first[m.group(1)] = round(seconds, 1)
    return first


def _run_stamped(
    command: list[str], cwd: Path, log: TextIO, began: float
) -> tuple[list[tuple[float, str]], int]:
    """Run ``command``, copying its output (stderr merged) to ``log`` line by line; each line
    with the seconds since ``began`` at which it arrived, and the exit code."""
    stamped = []
    with subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            stamped.append((time.monotonic() - began, line))
    return stamped, proc.returncode


def machine_cpu() -> float | None:
    """CPU seconds the machine has spent busy since boot (all cores), or None without
    /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal ...: busy is all but idle and iowait.
    ticks = [int(f) for f in fields[1:]]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
    return busy / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cmd_run(args: argparse.Namespace) -> int:
    checkouts = _checkouts(args.checkout)
    if args.out.is_dir():
        raise ReproError(f"--out {args.out} is a directory; give a file such as {DEFAULT_OUT}")
    keep = args.keep.resolve()
    keep.mkdir(parents=True, exist_ok=True)
    command = ["nox", "-s", "repro", "--", *args.repro_args]
    commands: list[Command] = []
    for pair in range(1, args.pairs + 1):
        for label, path in checkouts.items():
            out = keep / f"{label}-{pair}"
            out.mkdir(exist_ok=True)
            for old in out.glob("optuna-*.json"):
                old.unlink()  # a file from an earlier sitting would be read as this one's
            began, cpu_before, machine_before = time.monotonic(), _children_cpu(), machine_cpu()
            with open(keep / f"{label}-{pair}.log", "w", encoding="utf-8") as log:
                stamped, exit_code = _run_stamped([*command, "--out", str(out)], path, log, began)
            seconds = round(time.monotonic() - began, 1)
            cpu = round(_children_cpu() - cpu_before, 1)
            machine_after = machine_cpu()
            machine = (
                round(machine_after - machine_before, 1)
                if machine_after is not None and machine_before is not None
                else None
            )
            versions = [version_times(f) for f in results.load_all(out)]
            verdicts = verdict_times(stamped)
            commands.append(
                Command(
                    label,
                    pair,
                    seconds,
                    exit_code,
                    cpu,
                    versions,
                    machine_cpu_seconds=machine,
                    cores=os.cpu_count(),
                    verdict_seconds=verdicts,
                )
            )
            print(
                f"{label} {pair}: {seconds:.1f} s, {cpu:.1f} CPU s, verdicts at "
                f"{', '.join(f'{v} {t:.1f} s' for v, t in verdicts.items())} (exit {exit_code})",
                file=sys.stderr,
            )
            sitting = Sitting(
                # Labels, not this machine's folders: the commits say which code ran.
                checkouts={k: checkout_label(k) for k in checkouts},
                commits={k: _git_commit(v) for k, v in checkouts.items()},
                command=" ".join(command),
                commands=commands,
            )
            # After every command, so an interrupted sitting keeps what it measured.
            write_json(args.out, sitting.to_json(), schema=SCHEMA)
    print("\n".join(render(sitting)))
    return 0 if all(c.exit_code == 0 for c in commands) else 1


def _mean(values: Sequence[float]) -> str:
    return f"{statistics.fmean(values):.1f}" if values else "-"


def _mean_of(values: Sequence[float]) -> str:
    """The mean, then each value: ``226.1 (230.3, 221.8)``; ``-`` for none."""
    if not values:
        return "-"
    return f"{_mean(values)} (" + ", ".join(f"{v:.1f}" for v in values) + ")"


def _busy(commands: Sequence[Command]) -> str:
    """``251.0 (96%)``: the mean busy CPU seconds, and the mean share of cores x wall time."""
    if not commands:
        return "-"
    shares = [100 * (c.machine_cpu_seconds or 0.0) / ((c.cores or 1) * c.seconds) for c in commands]
    busy = statistics.fmean(c.machine_cpu_seconds or 0.0 for c in commands)
    return f"{busy:.1f} ({statistics.fmean(shares):.0f}%)"


def verdicts_differ(sitting: Sitting) -> list[str]:
    """Forced scenarios whose outcomes differ between any two commands (run on both sides)."""
    seen: dict[tuple[str, str], set[str]] = {}
    for c in sitting.commands:
        for v in c.versions:
            for scenario, outcomes in v.forced.items():
                seen.setdefault((v.version, scenario), set()).add(",".join(outcomes))
    return sorted(f"{version} {scenario}" for (version, scenario), o in seen.items() if len(o) > 1)


def render(sitting: Sitting) -> list[str]:
    # In the order the commands alternated (the JSON stores the checkouts with sorted keys).
    labels = list(dict.fromkeys([c.label for c in sitting.commands] + list(sitting.checkouts)))
    by = {label: [c for c in sitting.commands if c.label == label] for label in labels}
    head = "| | " + " | ".join(f"{label} ({sitting.commits[label][:7]})" for label in labels)
    lines = [head + " |", "|---|" + "---:|" * len(labels)]
    lines.append(
        "| `nox -s repro`, s (mean of "
        + ", ".join(f"{len(by[label])}" for label in labels)
        + ") | "
        + " | ".join(_mean_of([c.seconds for c in by[label]]) for label in labels)
        + " |"
    )
    if any(c.verdict_seconds for c in sitting.commands):
        # A sitting recorded before the time stamps has none.
        lines.append(
            "| every version's #5489 verdict printed, s after the start | "
            + " | ".join(
                _mean_of([max(c.verdict_seconds.values()) for c in by[label] if c.verdict_seconds])
                for label in labels
            )
            + " |"
        )
    lines.append(
        "| its CPU seconds, harness processes only | "
        + " | ".join(_mean_of([c.cpu_seconds for c in by[label]]) for label in labels)
        + " |"
    )
    if any(c.machine_cpu_seconds is not None for c in sitting.commands):
        lines.append(
            "| the machine's busy CPU seconds meanwhile (servers included), % of its cores | "
            + " | ".join(_busy([c for c in by[label] if c.machine_cpu_seconds]) for label in labels)
            + " |"
        )
    versions = sorted({v.version for c in sitting.commands for v in c.versions}, key=version_key)
    for version in versions:

        def times(label: str, version: str = version) -> list[VersionTimes]:
            return [v for c in by[label] for v in c.versions if v.version == version]

        lines.append(
            f"| Optuna {version}: runs / lanes' wall, s | "
            + " | ".join(
                f"{'/'.join(sorted({str(v.runs) for v in times(label)}))} / "
                f"{_mean([v.wall_seconds for v in times(label)])}"
                for label in labels
            )
            + " |"
        )
        for kind in ALL_STORAGES:
            cells = [[v.storage_seconds.get(kind, 0.0) for v in times(label)] for label in labels]
            if any(any(c) for c in cells):
                lines.append(
                    f"| &nbsp;&nbsp;{kind}: run seconds | "
                    + " | ".join(_mean(c) for c in cells)
                    + " |"
                )
    violations = {
        label: sum(v.violations for c in by[label] for v in c.versions) for label in labels
    }
    lines.append(
        "| runs contradicting their expectation | "
        + " | ".join(str(violations[label]) for label in labels)
        + " |"
    )
    differ = verdicts_differ(sitting)
    lines.append("")
    lines.append(
        "Forced outcomes (scenarios on both sides whose outcome the code forces): "
        + ("identical in every command." if not differ else "differ for " + ", ".join(differ))
    )
    return lines


def cmd_render(args: argparse.Namespace) -> int:
    sitting = Sitting.from_json(load_json(args.file, schema=SCHEMA))
    print("\n".join(render(sitting)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="alternate warm `nox -s repro` in two checkouts")
    run.add_argument(
        "--checkout",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="a checkout of this repository (its .nox environments are reused); give two",
    )
    run.add_argument("--pairs", type=positive_int, default=2, help="rounds (default: 2)")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    run.add_argument(
        "--keep",
        type=Path,
        default=Path("/tmp/repro-sitting"),
        help="where each command's results folder and log go (default: /tmp/repro-sitting)",
    )
    run.add_argument(
        "repro_args", nargs="*", help="after --: options for `repro run` on both sides"
    )
    render_cmd = sub.add_parser("render", help="print the table from a sitting's JSON")
    render_cmd.add_argument("file", type=Path, nargs="?", default=DEFAULT_OUT)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return dispatch(PROG, {"run": cmd_run, "render": cmd_render}, args)


if __name__ == "__main__":
    sys.exit(main())
