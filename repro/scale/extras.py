"""What the scale runs need beyond the harness, checked before anything starts: each missing
piece is one line naming the extra that installs it, and a release without the proxy is "not
applicable" with its version bound."""

from __future__ import annotations

import importlib.util

from repro.errors import ReproError

EXTRA = "pip install 'optuna-grid-repro[scale]'"
# The modules the gRPC proxy imports (optuna/storages/_grpc/grpc_imports.py at v4.2.0), with
# the distribution that installs each.
GRPC_MODULES = {"grpc": "grpcio", "google.protobuf": "protobuf"}


class MissingExtra(ReproError):
    """A package of the ``scale`` extra is not installed."""


class NotApplicable(ReproError):
    """The installed Optuna lacks what the run needs; the message gives the version bound."""


def not_applicable(what: str, since: str, version: str) -> str:
    """The one wording of a result (and an error) on a release without ``what``."""
    return f"{what}: not applicable on Optuna {version} (from {since})"


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package (google) is missing
        return False


def require_grpc() -> None:
    """Raise NotApplicable on a release without the proxy, MissingExtra without grpcio or
    protobuf; the release first, since no extra brings the proxy to it."""
    from repro import _compat

    if not _compat.GRPC_PROXY:
        raise NotApplicable(
            not_applicable("grpc storage", _compat.GRPC_PROXY_SINCE, _compat.OPTUNA_VERSION)
        )
    for module, distribution in GRPC_MODULES.items():
        if not _installed(module):
            raise MissingExtra(
                f"grpc storage needs {distribution}, which is not installed: {EXTRA}"
            )


def require_distributed() -> None:
    """Raise MissingExtra without Dask's ``distributed``."""
    if not _installed("distributed"):
        raise MissingExtra(f"--launcher dask needs distributed, which is not installed: {EXTRA}")
