"""Upstream's own GridSampler tests, run against the installed target, passed/failed per test.

The tests come from the release's sdist (or the source tree) that ``repro.targets prepare``
kept; they run from a copy holding only ``tests/`` and ``pyproject.toml``, so ``import optuna``
finds the installed build, never the source next to the tests. The outcome of every test goes
into one JSON file keyed by target label, so the release and the patched build sit side by side.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from repro import targets
from repro.jsonfile import load_json, write_json

SCHEMA = 1
# test_grid.py whole, and the one sampler-wide test parametrized with GridSampler (its case
# ids are positional, e.g. `[<lambda>-True-False]` on 5.0.0, so the whole test is run: it
# checks that every sampler's one LazyRandomState is reseeded, which the fix must keep).
SELECTION = (
    "tests/samplers_tests/test_grid.py",
    "tests/samplers_tests/test_samplers.py::test_sampler_reseed_rng",
)
TIMEOUT = 900.0


@dataclass(frozen=True)
class UpstreamRun:
    target: dict[str, Any]
    command: str
    outcomes: dict[str, str]  # test id -> passed | failed | error | skipped
    passed: int
    failed: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class UpstreamTests:
    """One target's recorded run, as the report and the upstream bundle read it."""

    label: str
    command: str
    passed: int
    failed: int
    not_passed: list[str]  # test ids


def load(path: Path) -> list[UpstreamTests]:
    """Every target's run in ``path``, by label."""
    data = load_json(path, schema=SCHEMA)
    return [
        UpstreamTests(
            label,
            run["command"],
            run["passed"],
            run["failed"],
            sorted(t for t, outcome in run["outcomes"].items() if outcome != "passed"),
        )
        for label, run in sorted(data["runs"].items())
    ]


def outcomes_from_junit(path: Path) -> dict[str, str]:
    """Test id (file::name) -> outcome, from pytest's --junitxml file."""
    found: dict[str, str] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/") + ".py"
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = {"failure": "failed"}.get(tag, tag)
        found[f"{module}::{case.get('name', '')}"] = outcome
    return found


def run(tests_from: Path) -> tuple[str, dict[str, str]]:
    """Run the selection in this interpreter's environment; return the command and outcomes."""
    with tempfile.TemporaryDirectory(prefix="grid-repro-upstream-") as tmp:
        work = Path(tmp)
        shutil.copytree(tests_from / "tests", work / "tests")
        shutil.copy2(tests_from / "pyproject.toml", work / "pyproject.toml")
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        command += ["--color=no", f"--junitxml={work / 'junit.xml'}", *SELECTION]
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        try:
            done = subprocess.run(
                command, cwd=work, capture_output=True, text=True, timeout=TIMEOUT, env=env
            )
        except subprocess.TimeoutExpired:
            raise targets.TargetError(f"upstream tests did not finish in {TIMEOUT:.0f} s") from None
        junit = work / "junit.xml"
        if done.returncode not in (0, 1) or not junit.exists():
            last = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
            raise targets.TargetError(f"upstream tests could not run: {last[0]}")
        shown = ["python", "-m", "pytest", *SELECTION]
        return " ".join(shown), outcomes_from_junit(junit)


def run_and_record(path: Path) -> int:
    """Run upstream's tests on the active target and merge them into ``path`` under its
    label; exit status 0 whatever the tests say (their outcomes are the measurement)."""
    target = targets.active()
    if not target:
        raise targets.TargetError(f"no target: set ${targets.ENV_VAR} (nox -s target does)")
    tests_from = load_json(Path(os.environ[targets.ENV_VAR]), schema=targets.SCHEMA)["tests_from"]
    if not tests_from:
        raise targets.TargetError(
            f"target {target['label']!r}: upstream tests need a release, release+patch or "
            "source-tree target (its tests/ come from the sdist or the tree)"
        )
    command, outcomes = run(targets.ROOT / tests_from)
    values = list(outcomes.values())
    record = UpstreamRun(
        target, command, outcomes, values.count("passed"), len(values) - values.count("passed")
    )
    data = load_json(path, schema=SCHEMA) if path.exists() else {"runs": {}}
    data["runs"][target["label"]] = record.to_json()
    write_json(path, data, schema=SCHEMA)
    print(
        f"upstream tests on {target['label']}: {record.passed} passed, {record.failed} not "
        f"passed; wrote {path}",
        file=sys.stderr,
    )
    return 0
