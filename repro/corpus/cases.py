"""Corpus cases as data, and their JSON form.

A case is a scenario drawn at random: launch mode, seed policy, worker count and search space.
The corpus is drawn once (``strategies.draw_corpus``) and replayed everywhere, so every Optuna
version runs exactly the same cases whatever Hypothesis version its environment has.

Values are stored tagged, ``[type, payload]``, because plain JSON cannot keep them apart:

- ``["int", 1]``, ``["bool", true]``, ``["str", "1"]``, ``["none", null]``;
- ``["float", "1.0"]``: the payload is ``repr(value)``, which round-trips every float exactly,
  ``"-0.0"``, ``"inf"``, ``"-inf"`` and ``"nan"`` included. Only the canonical repr is accepted,
  so a hand-edited ``["float", "1"]`` is an error rather than a silent 1.0. NaN has no sign or
  payload here (``repr`` drops both, as Optuna's JSON storages do); the strategies only draw
  ``float("nan")``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from repro import jsonfile
from repro.errors import ReproError
from repro.jsonfile import FormatError, dumps, encode_value, write_atomic
from repro.metrics import value_key
from repro.results import RunRecord
from repro.scenarios import (
    MODES,
    SEED_POLICIES,
    GridValue,
    Mode,
    Remedy,
    Scenario,
    ScenarioError,
    SearchSpace,
    SeedPolicy,
)

SCHEMA = 1
# The journal file storage: a 24-trial run takes ~0.2 s there and ~1 s on SQLite, whose RDB
# overhead is ~57 ms per trial; the corpus is about GridSampler, not the storage.
CORPUS_STORAGE = "journal"
# What a case is replayed under: today's GridSampler and the two remedies that swap
# the sampler, each as the harness runs it (``Scenario.remedy``). The bigger budgets keep
# GridSampler and only add trials, so the matrix measures them and the corpus does not.
REMEDIES: tuple[Remedy, ...] = ("grid", "bruteforce", "enqueued")


class CorpusError(ReproError, ValueError):
    """A corpus file or case that cannot be used; the message says what to change."""


def decode_value(item: object) -> GridValue:
    try:
        value: GridValue = jsonfile.decode_value(item)
    except FormatError as exc:
        raise CorpusError(str(exc)) from None
    return value


def encode_space(space: SearchSpace) -> list[list[Any]]:
    return [[name, [encode_value(v) for v in values]] for name, values in space]


def decode_space(data: object) -> SearchSpace:
    if not isinstance(data, list) or not data:
        raise CorpusError("space must be a non-empty list of [name, [values]]")
    space = []
    for entry in data:
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], list)):
            raise CorpusError(f"space entry {entry!r} is not [name, [values]]")
        space.append((entry[0], tuple(decode_value(v) for v in entry[1])))
    try:
        return frozen_space(space)
    except ScenarioError as exc:
        raise CorpusError(str(exc)) from None


def frozen_space(space: Sequence[tuple[str, Sequence[GridValue]]]) -> SearchSpace:
    """Check a space as the harness does, keeping the values exactly (no dict merging)."""
    names = [name for name, _ in space]
    if len(set(names)) != len(names):
        raise CorpusError(f"parameter names repeat in {names}")
    frozen = tuple(sorted((name, tuple(values)) for name, values in space))
    Scenario("sequential", "none", CORPUS_STORAGE, search_space=frozen)  # validates
    return frozen


def space_keys(space: SearchSpace) -> list[tuple[str, list[str]]]:
    """A form of the space in which 1, 1.0, True and "1" differ and every NaN is equal."""
    return [(name, [value_key(v) for v in values]) for name, values in space]


def python_literal(value: GridValue) -> str:
    """Source text that evaluates to exactly ``value`` (repr, except for the floats that have
    no literal)."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return f'float("{value!r}")'
    return repr(value)


def space_literal(space: SearchSpace) -> str:
    params = ", ".join(
        f"{name!r}: [{', '.join(python_literal(v) for v in values)}]" for name, values in space
    )
    return "{" + params + "}"


@dataclass(frozen=True)
class Case:
    id: str
    mode: Mode
    seed_policy: SeedPolicy
    workers: int
    space: SearchSpace

    def scenario(self, storage: str = CORPUS_STORAGE, remedy: Remedy = "grid") -> Scenario:
        # The label puts the case id in the scenario id ("...-w3-case-007", under a remedy
        # "...-w3-case-007-bruteforce"): other ids end in "-g<size>" or "-custom-<hash>" (then
        # "-t<trials>" and the remedy), so corpus runs never replace them, nor they these.
        return Scenario(
            mode=self.mode,
            seed_policy=self.seed_policy,
            storage=storage,
            workers=self.workers,
            search_space=self.space,
            label=self.id,
            remedy=remedy,
        )

    @property
    def grid_size(self) -> int:
        return math.prod(len(values) for _, values in self.space)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mode": self.mode,
            "seed_policy": self.seed_policy,
            "workers": self.workers,
            "grid_size": self.grid_size,
            "space": encode_space(self.space),
        }

    @classmethod
    def from_json(cls, data: object) -> Case:
        if not isinstance(data, dict):
            raise CorpusError(f"case {data!r} is not an object")
        where = f"case {data.get('id')!r}"
        try:
            case_id, mode, policy, workers = (
                data["id"],
                data["mode"],
                data["seed_policy"],
                data["workers"],
            )
            space = decode_space(data["space"])
        except KeyError as exc:
            raise CorpusError(f"{where} has no {exc.args[0]!r}") from None
        except CorpusError as exc:
            raise CorpusError(f"{where}: {exc}") from None
        if not isinstance(case_id, str) or not case_id:
            raise CorpusError(f"{where}: id must be a non-empty string")
        if mode not in MODES or policy not in SEED_POLICIES:
            raise CorpusError(
                f"{where}: mode must be one of {', '.join(MODES)} and seed_policy one of "
                f"{', '.join(SEED_POLICIES)}"
            )
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise CorpusError(f"{where}: workers must be a whole number of at least 1")
        return cls(case_id, mode, policy, workers, space)

    @property
    def digest(self) -> str:
        """Names everything that decides the case's runs: a probe or run stored under this
        case id with another digest belongs to an older corpus."""
        text = json.dumps(self.to_json(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def matches(self, record: RunRecord) -> bool:
        """Whether ``record`` is a run of exactly this case, on the storage it names and under
        any of the corpus's remedies (same scenario, same typed space)."""
        remedy = next((r for r in REMEDIES if r == record.remedy), None)
        if remedy is None:
            return False
        recorded = tuple((name, tuple(values)) for name, values in record.search_space)
        return (
            record.case_id == self.id
            and record.scenario == self.scenario(record.storage, remedy).id
            and space_keys(recorded) == space_keys(self.space)
        )


@dataclass(frozen=True)
class Corpus:
    cases: tuple[Case, ...]
    seed: int
    hypothesis: str
    max_grid: int
    command: str = ""
    storage: str = CORPUS_STORAGE
    schema: int = SCHEMA

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "seed": self.seed,
            "hypothesis": self.hypothesis,
            "max_grid": self.max_grid,
            "storage": self.storage,
            "command": self.command,
            "value_encoding": "[type, payload]; a float's payload is its repr",
            "cases": [c.to_json() for c in self.cases],
        }

    @classmethod
    def from_json(cls, data: object) -> Corpus:
        if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
            raise CorpusError("not a corpus: expected an object with a list of cases")
        if data.get("schema") != SCHEMA:
            raise CorpusError(f"corpus schema {data.get('schema')!r}; this code reads {SCHEMA}")
        cases = tuple(Case.from_json(c) for c in data["cases"])
        ids = [c.id for c in cases]
        if len(set(ids)) != len(ids):
            raise CorpusError("case ids repeat")
        try:
            return cls(
                cases=cases,
                seed=int(data["seed"]),
                hypothesis=str(data["hypothesis"]),
                max_grid=int(data["max_grid"]),
                command=str(data.get("command", "")),
                storage=str(data.get("storage", CORPUS_STORAGE)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorpusError(f"corpus header is incomplete ({exc})") from None

    def select(self, count: int | None) -> list[Case]:
        """The first ``count`` cases (all when None): a corpus is drawn once and replayed in
        part or in full, never re-drawn to scale."""
        return list(self.cases if count is None else self.cases[:count])

    def by_id(self) -> dict[str, Case]:
        return {c.id: c for c in self.cases}


def numbered(cases: Sequence[Case]) -> tuple[Case, ...]:
    """Stable ids in drawing order: case-000, case-001, ..."""
    width = max(3, len(str(len(cases) - 1)))
    return tuple(replace(c, id=f"case-{i:0{width}d}") for i, c in enumerate(cases))


def save(path: Path, corpus: Corpus) -> None:
    write_atomic(path, dumps(corpus.to_json()))


def load(path: Path) -> Corpus:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CorpusError(
            f"{path} does not exist; draw one with `python -m repro.corpus generate` "
            "(or `nox -s corpus_generate`)"
        ) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path} is not JSON ({exc.msg}, line {exc.lineno})") from None
    try:
        return Corpus.from_json(data)
    except CorpusError as exc:
        raise CorpusError(f"{path}: {exc}") from None
