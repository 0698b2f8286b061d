"""Shared fixtures; the Hypothesis profile is chosen once, here."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"


def run_cli(
    *args: str, timeout: float = 300, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m repro ARGS` in a fresh interpreter from the checkout, as a user runs it;
    ``env`` sets (or, with None, removes) environment variables."""
    environ = dict(os.environ)
    for key, value in (env or {}).items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return subprocess.run(
        [sys.executable, "-m", "repro", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=environ,
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
    # One tag per test session, inherited by xdist workers and every child process: the
    # suite's server names carry it, and the leftover checks look only at them.
    if not hasattr(config, "workerinput"):
        os.environ.setdefault("REPRO_RUN_TAG", f"t{uuid.uuid4().hex[:6]}")
    default = "ci" if os.environ.get("CI") or os.environ.get("REPRO_PINNED_OPTUNA") else "dev"
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", default))


def services_opted_out() -> bool:
    """Server storages are tested unless REPRO_NO_SERVICES=1 says otherwise; pytest -ra then
    lists every skipped server test with this reason."""
    return os.environ.get("REPRO_NO_SERVICES") == "1"


@functools.cache
def _unreachable(kind: str) -> str | None:
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
    problem = _unreachable(kind)
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{problem} (CI needs every server; .ci/run starts them)")
    pytest.skip(f"{problem} (not CI, so skipped; CI would fail here)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After the whole suite (on the xdist controller only): nothing the suite created on a
    server may be left behind."""
    if hasattr(session.config, "workerinput") or services_opted_out():
        return
    if not os.environ.get("CI") and any(_unreachable(k) for k in ("postgresql", "mysql", "redis")):
        return
    from repro import services
    from repro.scenarios import SERVER_STORAGES

    left = {kind: services.leftovers(kind) for kind in SERVER_STORAGES}
    left = {kind: names for kind, names in left.items() if names}
    if left:
        print(f"\nleft behind on the servers: {left}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
