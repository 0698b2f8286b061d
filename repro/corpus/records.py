"""What a corpus replay and a shrink measured beyond the runs themselves, as plain records in
``results/corpus-<version>.json`` (the runs go to ``results/optuna-<version>.json``).

Nothing here imports Optuna or Hypothesis: the report reads these files without either.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro.jsonfile import from_fields, load_json, shallow_fields, write_json

SCHEMA = 1


@dataclass(frozen=True)
class Probe:
    """What one Optuna version does with a case's values before any trial runs: the warnings
    or the error of ``GridSampler(space)``, and the values that ``CategoricalDistribution``
    records as another, equal choice (``True`` as ``1`` when ``1`` comes first; ``0.0`` as
    ``-0.0``). ``recorded_as`` lists, per parameter, ``[given, recorded]`` tagged pairs (see
    cases.py) for those values only."""

    case_id: str
    digest: str
    recorded_as: dict[str, list[list[Any]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Probe:
        return cls(**data)


@dataclass(frozen=True)
class ShrinkOutcome:
    """One (version, seed policy): whether Hypothesis looked for a minimal failing search space,
    what it found, and the confirmation of the find.

    ``status``: ``shrunk`` (found and shrunk), ``not-found`` (no failure within ``examples``
    sequential runs), ``holds`` (the property held in every corpus case of this policy, so
    there was nothing to shrink), ``not-deterministic`` (seed policy ``none``: the outcome
    depends on OS entropy, so shrinking would chase noise), ``flaky`` (Hypothesis saw one
    example both pass and fail)."""

    seed_policy: str
    status: str
    reason: str
    mode: str = "sequential"
    hypothesis: str = ""  # the version that searched and shrank
    max_examples: int = 0  # examples allowed before a failure is found
    examples: int = 0  # property evaluations, each a real run with worker processes
    rejected: int = 0  # runs that errored: no evidence either way
    seconds: float = 0.0
    hypothesis_seed: int | None = None
    workers: int | None = None
    space: list[list[Any]] | None = None  # tagged, as in corpus.json
    grid_size: int | None = None
    # A fresh harness run of the minimal space after shrinking: verdict and counts.
    confirmation: dict[str, Any] | None = None
    snippet: str = ""
    # The snippet run as a script in the same environment: exit code and its output.
    snippet_check: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShrinkOutcome:
        return cls(**data)


@dataclass(frozen=True)
class CorpusResults:
    optuna_version: str
    corpus_seed: int
    replay: dict[str, Any] = field(default_factory=dict)  # command, wall seconds, lanes, ...
    probes: dict[str, Probe] = field(default_factory=dict)
    shrunk: list[ShrinkOutcome] = field(default_factory=list)
    # Derived from the runs and probes (judge.tally), stored so that every figure the corpus
    # section prints is in the JSON.
    summary: dict[str, Any] = field(default_factory=dict)
    schema: int = SCHEMA

    def to_json(self) -> dict[str, Any]:
        data = shallow_fields(self)
        data["probes"] = {k: p.to_json() for k, p in sorted(self.probes.items())}
        data["shrunk"] = [s.to_json() for s in self.shrunk]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CorpusResults:
        return from_fields(
            cls,
            data,
            probes={k: Probe.from_json(p) for k, p in data.get("probes", {}).items()},
            shrunk=[ShrinkOutcome.from_json(s) for s in data.get("shrunk", [])],
        )


def path_for(directory: Path, optuna_version: str) -> Path:
    return directory / f"corpus-{optuna_version}.json"


def save(path: Path, results: CorpusResults) -> None:
    write_json(path, results.to_json(), schema=SCHEMA)


def load(path: Path) -> CorpusResults | None:
    if not path.exists():
        return None
    return CorpusResults.from_json(load_json(path, schema=SCHEMA))
