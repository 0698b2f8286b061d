"""The report's single-file reproductions run and show what the expectation table says for the
installed Optuna."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from repro import _compat, expectations
from repro.report import SCRIPTS

from .helpers import RESULTS

pytestmark = pytest.mark.xdist_group("processes")

POLICY = {"lost_points_5489.py": "none", "lost_points_per_worker_seed.py": "per-worker"}


def test_every_script_is_checked() -> None:
    assert {name for name, _ in SCRIPTS} == set(POLICY)
    assert {p.name for p in (RESULTS / "scripts").glob("*.py")} == set(POLICY)


@pytest.mark.parametrize("name", sorted(POLICY))
def test_script_reproduces_the_expected_outcome(name: str) -> None:
    """False-positive bound: a `loses-points` outcome fails by chance with probability 7.0e-9
    (the same 24-point grid and 4 workers as repro/scenarios.py); `exact` is forced."""
    script = RESULTS / "scripts" / name
    head = script.read_text().splitlines()[:4]
    assert head[0] == "# /// script"
    assert head[3] == "# ///"
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["optuna"] == _compat.OPTUNA_VERSION
    assert result["trials"] == 24
    row = expectations.expected(_compat.OPTUNA_VERSION, "sequential", POLICY[name])
    if row.outcome == "loses-points":
        assert result["missing"] > 0, result
    else:
        assert result["missing"] == result["duplicates"] == 0, result
