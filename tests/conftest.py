"""Shared fixtures; the Hypothesis profile is chosen once, here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"

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
