"""What several test files share that is not a fixture: paths, running the CLI, skipping a
server test, the one factory of hand-built run records, the link targets of Markdown. pytest
discourages importing from conftest, so fixtures and hooks stay there and plain helpers live
here."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from repro.metrics import Metrics
from repro.results import RunRecord
from repro.scenarios import UPSTREAM, Scenario, ScenarioError, matrix

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"

# For test modules that read the committed JSON and render from it, with no Optuna in the way
# (the report, the upstream bundle): the installed release plays no part, so `nox -s tests`
# runs them once, in the newest release's session, instead of once per pinned release. A
# plain `pytest` (no pinned release) runs them too.
ONCE_PER_CI = pytest.mark.skipif(
    os.environ.get("REPRO_PINNED_OPTUNA", "latest") != "latest",
    reason="reads the committed JSON only, no Optuna: runs once, in the latest session",
)


def run_cli(
    *args: str,
    module: str = "repro",
    timeout: float = 300,
    env: dict[str, str | None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`python -m MODULE ARGS` in a fresh interpreter from the checkout, as a user runs it;
    ``env`` sets (or, with None, removes) environment variables."""
    environ = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=environ,
    )


def services_opted_out() -> bool:
    """Server storages are tested unless REPRO_NO_SERVICES=1 says otherwise; pytest -ra then
    lists every skipped server test with this reason."""
    return os.environ.get("REPRO_NO_SERVICES") == "1"


@functools.cache
def unreachable(kind: str) -> str | None:
    """Why the server of ``kind`` does not answer, or None when it does (asked once per
    process)."""
    from repro import services
    from repro.storages import StorageError, StorageSpec

    try:
        services.check_reachable(StorageSpec(kind, services.server_url(kind)))
    except StorageError as exc:
        return str(exc)
    return None


def require_service(kind: str) -> None:
    """Skip a test that needs a server only by explicit opt-out, or outside CI when the server
    does not answer (with the reason in the skip line); in CI an unreachable server fails."""
    if services_opted_out():
        pytest.skip(f"{kind}: server storages opted out with REPRO_NO_SERVICES=1")
    problem = unreachable(kind)
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{problem} (CI needs every server; .ci/run starts them)")
    pytest.skip(f"{problem} (not CI, so skipped; CI would fail here)")


def run_record(
    scenario: Scenario | str = UPSTREAM,
    *,
    repetition: int = 0,
    missing: int = 0,
    same_id: int = 0,
    orders: int = 1,
    error: str | None = None,
    measured: Metrics | None = None,
    **fields: Any,
) -> RunRecord:
    """A hand-built record of one finished run of ``scenario`` (a Scenario, or the id of one in
    the default matrix). Without ``measured`` the study used its whole budget of grid-size
    trials, so every lost point is one duplicate: ``same_id`` of them re-used a grid id, the
    rest collided. With ``measured`` the counts are those metrics. ``fields`` set any other
    RunRecord field."""
    if isinstance(scenario, str):
        found = next((s for s in matrix() if s.id == scenario), None)
        if found is None:
            raise ScenarioError(f"no default scenario {scenario!r}; pass a Scenario")
        scenario = found
    grid = scenario.grid_size
    # Metrics has the field names of the RunRecord counts.
    counts: dict[str, Any] = (
        dataclasses.asdict(measured)
        if measured is not None
        else {
            "trials": grid,
            "complete": grid,
            "distinct": grid - missing,
            "duplicates": missing,
            "missing": missing,
            "same_id_duplicates": same_id,
            "colliding_id_duplicates": missing - same_id,
        }
    )
    base: dict[str, Any] = {
        "scenario": scenario.id,
        "mode": scenario.mode,
        "seed_policy": scenario.seed_policy,
        "storage": scenario.storage,
        "workers": scenario.workers,
        "grid_size": grid,
        "repetition": repetition,
        "worker_orders_distinct": orders,
        "error": error,
        "trials_per_worker": scenario.trials_each,
        "search_space": [[name, list(values)] for name, values in scenario.search_space],
        "remedy": scenario.remedy,
    }
    return RunRecord(**{**base, **counts, **fields})


def link_targets(text: str) -> list[str]:
    """Every link and image target of Markdown text, Markdown or HTML, as markdown-it-py (with
    GitHub's tables) reads them: what a pasted body would resolve against the issue's URL."""
    from markdown_it import MarkdownIt

    targets = []
    for token in MarkdownIt("commonmark").enable("table").parse(text):
        for child in token.children or []:
            if child.type == "link_open":
                targets.append(str(child.attrs["href"]))
            elif child.type == "image":
                targets.append(str(child.attrs["src"]))
            elif child.type == "html_inline":
                targets += re.findall(r'(?:href|src)="([^"]*)"', child.content)
        if token.type == "html_block":
            targets += re.findall(r'(?:href|src)="([^"]*)"', token.content)
    return targets


def run_main(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m repro ARGS` inside this process (repro.cli.main, output captured): the same
    code path as ``run_cli`` without the interpreter and Optuna import each call costs, for
    tests that make many calls on one study. A ReproError is its one line and exit 2 here too;
    an argparse error (SystemExit) its status."""
    import contextlib
    import io

    from repro.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return subprocess.CompletedProcess(["repro", *args], code, out.getvalue(), err.getvalue())
