"""Upstream's own tests that concern GridSampler, run against the installed target, with the
outcome of every test.

The selection is upstream's whole ``tests/samplers_tests/`` and every other test file that
names ``GridSampler`` (found by reading the files, so a release that adds one is covered).
They come from the release's sdist (or the source tree) that ``repro.targets prepare`` kept and
run from a copy holding only ``tests/`` and ``pyproject.toml``, so ``import optuna`` finds the
installed build, never the source next to the tests. Two xdist workers at low priority: the
machine is shared. The outcome of every test goes into one JSON file keyed by target label, so
the release and the patched build sit side by side, and ``compare`` lists where they differ.

``python -m repro.upstream_tests`` (what ``nox -s target -- SPEC upstream-tests`` runs) needs
``$REPRO_TARGET``; nothing here imports Optuna.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro import targets
from repro.cmdline import Parser, dispatch
from repro.jsonfile import load_json, write_json

SCHEMA = 1
PROG = "python -m repro.upstream_tests"
FILENAME = "upstream-tests.json"
WHOLE = "tests/samplers_tests"
NAMED = "GridSampler"
# Two xdist workers, niced: four jobs share this project's two cores.
PYTEST_OPTIONS = ("-n", "2", "-q", "-p", "no:cacheprovider", "--color=no")
NICE = 10
TIMEOUT = 5400.0
PASSED = "passed"


@dataclass(frozen=True)
class UpstreamRun:
    target: dict[str, Any]
    command: str
    tests_of: str  # the target spec whose tests/ ran: this one's, or a patched build's
    selection: list[str]
    seconds: float
    outcomes: dict[str, str]  # test id -> passed | failed | error | skipped
    messages: dict[str, str]  # test id -> first line of its message, for those not passed
    passed: int
    failed: int  # failed or error
    skipped: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class UpstreamTests:
    """One target's recorded run, as the report and the upstream bundle read it."""

    label: str
    command: str
    passed: int
    failed: int
    not_passed: list[str]  # test ids that failed or errored
    skipped: int = 0
    outcomes: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    messages: dict[str, str] = field(default_factory=dict)
    tests_of: str = ""  # the target spec whose tests/ ran


@dataclass(frozen=True)
class Difference:
    test: str
    release: str  # the outcome, or "absent" when the build's tests lack it
    patched: str


def load(path: Path) -> list[UpstreamTests]:
    """Every target's run in ``path``, by label."""
    data = load_json(path, schema=SCHEMA)
    return [
        UpstreamTests(
            label,
            run["command"],
            run["passed"],
            run["failed"],
            sorted(t for t, outcome in run["outcomes"].items() if outcome in ("failed", "error")),
            run.get("skipped", 0),
            run["outcomes"],
            run.get("seconds", 0.0),
            run.get("messages", {}),
            run.get("tests_of", ""),
        )
        for label, run in sorted(data["runs"].items())
    ]


def compare(release: UpstreamTests, patched: UpstreamTests) -> list[Difference]:
    """Every test whose outcome differs between two runs, a test only one of them has
    included."""
    tests = sorted(set(release.outcomes) | set(patched.outcomes))
    return [
        Difference(t, release.outcomes.get(t, "absent"), patched.outcomes.get(t, "absent"))
        for t in tests
        if release.outcomes.get(t, "absent") != patched.outcomes.get(t, "absent")
    ]


def select(tests_from: Path) -> list[str]:
    """``tests/samplers_tests`` and every other test file that names GridSampler."""
    named = sorted(
        path.relative_to(tests_from).as_posix()
        for path in (tests_from / "tests").rglob("test_*.py")
        if not path.relative_to(tests_from).as_posix().startswith(WHOLE + "/")
        and NAMED in path.read_text(encoding="utf-8")
    )
    return [WHOLE, *named]


def test_id(classname: str, name: str, root: Path | None) -> str:
    """pytest's id (``path.py::Class::name``) of a junit testcase. Its ``classname`` is the
    dotted module path followed by any class names: the module is the longest prefix that is
    a file under ``root`` (without ``root``, all of it). A module that failed to collect has an
    empty ``classname`` and the dotted module as ``name``."""
    if not classname:
        return name.replace(".", "/") + ".py::(collection)"
    parts = classname.split(".")
    cut = len(parts)
    if root is not None:
        found = [
            k
            for k in range(1, cut + 1)
            if (root / "/".join(parts[:k])).with_suffix(".py").is_file()
        ]
        cut = found[-1] if found else cut
    return "::".join(["/".join(parts[:cut]) + ".py", *parts[cut:], name])


def outcomes_from_junit(
    path: Path, root: Path | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """Test id -> outcome, and test id -> the first line of its failure, error or skip
    message, from pytest's --junitxml file; ``root`` is where the tests ran."""
    found: dict[str, str] = {}
    why: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        test = test_id(case.get("classname", ""), case.get("name", ""), root)
        outcome = PASSED
        for tag in ("failure", "error", "skipped"):
            element = case.find(tag)
            if element is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
                message = (element.get("message") or element.text or "").strip()
                why[test] = message.splitlines()[0][:200] if message else ""
        found[test] = outcome
    return found, why


def run(tests_from: Path) -> tuple[str, list[str], dict[str, str], dict[str, str], float]:
    """Run the selection in this interpreter's environment; return the command, the
    selection, the outcomes, the messages of tests that did not pass and the wall time."""
    selection = select(tests_from)
    with tempfile.TemporaryDirectory(prefix="grid-repro-upstream-") as tmp:
        work = Path(tmp)
        shutil.copytree(tests_from / "tests", work / "tests")
        shutil.copy2(tests_from / "pyproject.toml", work / "pyproject.toml")
        pytest = [sys.executable, "-m", "pytest", *PYTEST_OPTIONS]
        command = ["nice", "-n", str(NICE), *pytest, f"--junitxml={work / 'junit.xml'}"]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        started = time.monotonic()
        try:
            done = subprocess.run(
                [*command, *selection],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
                env=env,
            )
        except subprocess.TimeoutExpired:
            raise targets.TargetError(f"upstream tests did not finish in {TIMEOUT:.0f} s") from None
        seconds = round(time.monotonic() - started, 1)
        junit = work / "junit.xml"
        if done.returncode not in (0, 1) or not junit.exists():
            last = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
            raise targets.TargetError(f"upstream tests could not run: {last[0]}")
        shown = ["python", "-m", "pytest", "-n", "2", *selection]
        return " ".join(shown), selection, *outcomes_from_junit(junit, work), seconds


def run_and_record(path: Path, tests_of: str | None = None) -> int:
    """Run upstream's tests on the active target and merge them into ``path`` under its
    label; exit status 0 whatever the tests say (their outcomes are the measurement).
    ``tests_of`` names another target (a patched build) whose ``tests/`` to run instead of
    this target's own: a release then runs the regression test a patch adds."""
    target = targets.active()
    if not target:
        raise targets.TargetError(f"no target: set ${targets.ENV_VAR} (nox -s target does)")
    if tests_of is None:
        recorded = load_json(Path(os.environ[targets.ENV_VAR]), schema=targets.SCHEMA)
        tests_from = recorded["tests_from"]
    else:
        tests_from = targets.prepare(targets.parse(tests_of)).tests_from
    if not tests_from:
        raise targets.TargetError(
            f"target {tests_of or target['label']!r}: upstream tests need a release, "
            "release+patch or source-tree target (its tests/ come from the sdist or the tree)"
        )
    command, selection, outcomes, messages, seconds = run(targets.ROOT / tests_from)
    values = list(outcomes.values())
    skipped = values.count("skipped")
    record = UpstreamRun(
        target,
        command,
        tests_of or target["spec"],
        selection,
        seconds,
        outcomes,
        messages,
        values.count(PASSED),
        len(values) - values.count(PASSED) - skipped,
        skipped,
    )
    data = load_json(path, schema=SCHEMA) if path.exists() else {"runs": {}}
    data["runs"][target["label"]] = record.to_json()
    write_json(path, data, schema=SCHEMA)
    print(
        f"upstream tests on {target['label']}: {record.passed} passed, {record.failed} failed, "
        f"{record.skipped} skipped in {seconds:.0f} s; wrote {path}",
        file=sys.stderr,
    )
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    return run_and_record(args.results / FILENAME, args.tests_of)


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"), help="default: results")
    parser.add_argument(
        "--tests-of",
        metavar="SPEC",
        help="run the tests/ of this target (e.g. RELEASE+PATCH) instead of $REPRO_TARGET's own",
    )
    args = parser.parse_args(argv)
    args.command = "run"
    return dispatch(PROG, {"run": _cmd_run}, args)


if __name__ == "__main__":
    sys.exit(main())
