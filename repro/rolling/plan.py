"""What a rolling-upgrade measurement runs, as data: pairs of releases, who creates the study,
seed policy, launch mode and storage. Nothing here starts a process."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from repro.scenarios import DEFAULT_WORKERS, Scenario, ScenarioError
from repro.timeline.releases import check_version
from repro.versions import version_key

LATEST = "latest"

# Users upgrading from 3.2.0 or 3.6.1, two releases exact on their own (4.0.0 +
# latest), and the last schema change (3.1.1 created v3.0.0.d tables, 3.2.0 adds v3.2.0.a),
# which shows what a refused storage looks like.
DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (
    ("3.2.0", "3.6.1"),
    ("3.6.1", LATEST),
    ("3.2.0", LATEST),
    ("4.0.0", LATEST),
    ("3.1.1", "3.2.0"),
)
MODES: tuple[str, ...] = ("sequential", "concurrent")
SEED_POLICIES: tuple[str, ...] = ("none", "shared")
DEFAULT_STORAGES: tuple[str, ...] = ("sqlite", "journal", "postgresql")
STORAGES: tuple[str, ...] = (*DEFAULT_STORAGES, "mysql", "redis")


def parse_pair(text: str) -> tuple[str, str]:
    """``3.2.0+3.6.1`` or ``3.6.1+latest``; raises ScenarioError with the fix."""
    parts = text.split("+")
    if len(parts) != 2:
        raise ScenarioError(f"pair {text!r} must look like 3.2.0+3.6.1 (two releases, one '+')")
    for part in parts:
        if part != LATEST:
            check_version(part, "--pair")
    if parts[0] == parts[1]:
        raise ScenarioError(f"pair {text!r} names one release twice; name two releases")
    return parts[0], parts[1]


def resolve(pairs: Iterable[tuple[str, str]], latest: str | None) -> list[tuple[str, str]]:
    """Replace "latest" with the newest release and order each pair older first."""
    out: list[tuple[str, str]] = []
    for a, b in pairs:
        named = [latest if v == LATEST else v for v in (a, b)]
        if None in named:
            raise ScenarioError("a pair names latest but the newest release is unknown")
        older, newer = sorted((str(v) for v in named), key=version_key)
        if older == newer:
            raise ScenarioError(f"{a}+{b} is one release ({older}) once latest is resolved")
        if (older, newer) not in out:
            out.append((older, newer))
    return out


@dataclass(frozen=True)
class Case:
    """One study shared by workers of two releases."""

    older: str
    newer: str
    creator: str  # the release whose worker 0 creates the study: older or newer
    seed_policy: str
    mode: str
    storage: str
    workers: int = DEFAULT_WORKERS

    @property
    def joiner(self) -> str:
        return self.newer if self.creator == self.older else self.older

    @property
    def scenario(self) -> Scenario:
        return Scenario(self.mode, self.seed_policy, self.storage, workers=self.workers)  # type: ignore[arg-type]

    def version_of(self, index: int) -> str:
        """Workers alternate between the releases, the creator's first (index 0)."""
        return self.creator if index % 2 == 0 else self.joiner

    @property
    def id(self) -> str:
        return (
            f"{self.older}+{self.newer}-by-{self.creator}-{self.mode}-{self.seed_policy}-"
            f"{self.storage}"
        )


def cases(
    pairs: Sequence[tuple[str, str]],
    modes: Sequence[str] = MODES,
    seed_policies: Sequence[str] = SEED_POLICIES,
    storages: Sequence[str] = DEFAULT_STORAGES,
) -> list[Case]:
    """Every pair x creation order x seed policy x mode x storage."""
    return [
        Case(older, newer, creator, policy, mode, storage)
        for (older, newer), storage, mode, policy in itertools.product(
            pairs, storages, modes, seed_policies
        )
        for creator in (older, newer)
    ]
