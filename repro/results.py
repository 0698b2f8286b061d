"""Plain records of what was measured, their JSON form, and atomic writes.

Nothing here imports Optuna: the report and the tests read results without it.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro.jsonfile import FormatError, from_fields, load_json, write_json
from repro.stats import mean_ci95, wilson95

SCHEMA = 1


@dataclass(frozen=True)
class RunRecord:
    scenario: str
    mode: str
    seed_policy: str
    storage: str
    workers: int
    grid_size: int
    repetition: int
    trials: int
    complete: int
    distinct: int
    duplicates: int
    missing: int
    same_id_duplicates: int
    colliding_id_duplicates: int
    worker_orders_distinct: int
    error: str | None
    trials_per_worker: int = 0
    search_space: list[list[Any]] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    study_name: str = ""
    duplicated_points: list[dict[str, Any]] = field(default_factory=list)
    missing_points: list[str] = field(default_factory=list)
    worker_results: list[dict[str, Any]] = field(default_factory=list)
    trial_log: list[dict[str, Any]] = field(default_factory=list)
    # Set on runs of a corpus case (repro/corpus): the report's scenario table leaves them out.
    case_id: str | None = None
    # Issue 12: the remedy a run measured ("grid" is today's GridSampler scenario), and the
    # tracebacks of workers that crashed under it; such a run keeps the others' trials.
    remedy: str = "grid"
    worker_crashes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        return from_fields(cls, data)


@dataclass(frozen=True)
class ResultsFile:
    optuna_version: str
    python: str
    platform: str
    packages: dict[str, str]
    runs: list[RunRecord]
    command: str = ""
    repetitions: int = 0
    jobs: int = 1
    wall_seconds: float = 0.0
    schema: int = SCHEMA

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["runs"] = [r.to_json() for r in self.runs]
        # Derived from the runs, stored so that every figure the report prints is in the JSON.
        data["summary"] = [s.to_json() for s in summarize(self.runs)]
        data["run_count"] = self.run_count
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ResultsFile:
        return from_fields(cls, data, runs=[RunRecord.from_json(r) for r in data.get("runs", [])])

    @property
    def run_count(self) -> int:
        return len(self.runs)

    @property
    def errors(self) -> list[RunRecord]:
        return [r for r in self.runs if r.error is not None]


def results_path(directory: Path, optuna_version: str) -> Path:
    return directory / f"optuna-{optuna_version}.json"


def save(path: Path, results: ResultsFile) -> None:
    write_json(path, results.to_json(), schema=SCHEMA)


def load(path: Path) -> ResultsFile:
    data = load_json(path, schema=SCHEMA)
    try:
        return ResultsFile.from_json(data)
    except (TypeError, KeyError, ValueError) as exc:
        raise FormatError(f"{path}: not a results file ({exc}); move it away") from None


def load_all(directory: Path) -> list[ResultsFile]:
    """Every ``optuna-*.json`` in ``directory``, oldest Optuna release first."""
    files = [load(p) for p in sorted(directory.glob("optuna-*.json"))]
    return sorted(files, key=lambda r: version_key(r.optuna_version))


def version_key(version: str) -> tuple[int, ...]:
    """Order release strings numerically by their leading digits ("5.0.0rc1" -> (5, 0, 0))."""
    return tuple(int(m.group()) if (m := re.match(r"\d+", p)) else 0 for p in version.split("."))


@dataclass(frozen=True)
class ScenarioSummary:
    """Aggregates over the repetitions of one scenario; errored runs are counted, not averaged."""

    scenario: str
    mode: str
    seed_policy: str
    storage: str
    runs: int
    errors: int
    runs_with_missing: int
    runs_with_duplicates: int
    missing_mean: float
    missing_max: int
    duplicates_mean: float
    same_id_mean: float
    colliding_id_mean: float
    trials_mean: float
    worker_orders_distinct_max: int
    # [low, high] bounds; lists so that the JSON form equals to_json() exactly.
    missing_ci95: list[float] = field(default_factory=list)
    duplicates_ci95: list[float] = field(default_factory=list)
    missing_share_wilson95: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(runs: list[RunRecord]) -> list[ScenarioSummary]:
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(run.scenario, []).append(run)
    out = []
    for scenario, group in groups.items():
        ok = [r for r in group if r.error is None]
        n = len(ok) or 1
        first = group[0]
        _, missing_lo, missing_hi = mean_ci95([r.missing for r in ok])
        _, dup_lo, dup_hi = mean_ci95([r.duplicates for r in ok])
        share_lo, share_hi = wilson95(sum(1 for r in ok if r.missing), len(ok))
        out.append(
            ScenarioSummary(
                scenario=scenario,
                mode=first.mode,
                seed_policy=first.seed_policy,
                storage=first.storage,
                runs=len(ok),
                errors=len(group) - len(ok),
                runs_with_missing=sum(1 for r in ok if r.missing),
                runs_with_duplicates=sum(1 for r in ok if r.duplicates),
                missing_mean=round(sum(r.missing for r in ok) / n, 2),
                missing_max=max((r.missing for r in ok), default=0),
                duplicates_mean=round(sum(r.duplicates for r in ok) / n, 2),
                same_id_mean=round(sum(r.same_id_duplicates for r in ok) / n, 2),
                colliding_id_mean=round(sum(r.colliding_id_duplicates for r in ok) / n, 2),
                trials_mean=round(sum(r.trials for r in ok) / n, 2),
                worker_orders_distinct_max=max((r.worker_orders_distinct for r in ok), default=0),
                missing_ci95=[round(missing_lo, 2), round(missing_hi, 2)],
                duplicates_ci95=[round(dup_lo, 2), round(dup_hi, 2)],
                missing_share_wilson95=[round(share_lo, 2), round(share_hi, 2)],
            )
        )
    return out
