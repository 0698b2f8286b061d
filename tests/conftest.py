"""Hooks only: the Hypothesis profile is chosen once here, each test session gets its own run tag,
and the suite fails if it left anything on the servers. Plain helpers are in helpers.py."""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import HealthCheck, settings

from .helpers import services_opted_out, unreachable


def pytest_configure(config: pytest.Config) -> None:
    # One tag per test session, inherited by xdist workers and every child process: the
    # suite's server names carry it, and the leftover checks look only at them.
    if not hasattr(config, "workerinput"):
        os.environ.setdefault("REPRO_RUN_TAG", f"t{uuid.uuid4().hex[:6]}")
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
    default = "ci" if os.environ.get("CI") or os.environ.get("REPRO_PINNED_OPTUNA") else "dev"
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", default))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the whole suite (on the xdist controller only): nothing the suite created on a
    server may be left behind."""
    if hasattr(session.config, "workerinput") or services_opted_out():
        return
    if not os.environ.get("CI") and any(unreachable(k) for k in ("postgresql", "mysql", "redis")):
        return
    from repro import services
    from repro.scenarios import SERVER_STORAGES

    left = {kind: services.leftovers(kind) for kind in SERVER_STORAGES}
    left = {kind: names for kind, names in left.items() if names}
    if left:
        print(f"\nleft behind on the servers: {left}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
