"""What a results file records about the machine and the libraries beside Optuna."""

from __future__ import annotations

import platform
from importlib import metadata

RECORDED_PACKAGES = (
    "numpy",
    "sqlalchemy",
    "alembic",
    "redis",
    "psycopg",
    "psycopg2-binary",
    "pymysql",
)


def environment() -> dict[str, object]:
    packages = {}
    for name in RECORDED_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": packages,
    }
