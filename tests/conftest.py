"""Shared fixtures; the Hypothesis profile is chosen once, here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`python -m repro ARGS` in a fresh interpreter from the checkout, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "repro", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=500, deadline=None)


def pytest_configure(config: pytest.Config) -> None:
    default = "ci" if os.environ.get("CI") or os.environ.get("REPRO_PINNED_OPTUNA") else "dev"
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", default))


def services_opted_out() -> bool:
    """Server storages are tested unless REPRO_NO_SERVICES=1 says otherwise; pytest -ra then
    lists every skipped server test with this reason."""
    return os.environ.get("REPRO_NO_SERVICES") == "1"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the whole suite (on the xdist controller only): nothing the suite created on a
    server may be left behind."""
    if hasattr(session.config, "workerinput") or services_opted_out():
        return
    from repro import services
    from repro.scenarios import SERVER_STORAGES

    left = {kind: services.leftovers(kind) for kind in SERVER_STORAGES}
    left = {kind: names for kind, names in left.items() if names}
    if left:
        print(f"\nleft behind on the servers: {left}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
