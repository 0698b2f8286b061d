"""Rolling upgrades (repro/rolling): pairs and cases, the outcome of a case (a refused storage
apart from lost points), verdicts and advice, the expectation rows, the JSON file, the report
section, workers that hang or fail, and one real pair of releases on SQLite."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import pytest

from repro import expectations
from repro.errors import ReproError
from repro.jsonfile import FormatError, dumps
from repro.rolling import launch, plan, records, section, verdict
from repro.rolling.plan import Case
from repro.rolling.records import CaseRecord, RollingFile, WorkerRun
from repro.timeline import envs
from repro.versions import version_key

from .helpers import RESULTS, ROOT

# Verbatim from measured runs (results/rolling.json): what each side of the last schema change
# says when it opens the other's SQLite file.
NEWER_REFUSES = (
    "RuntimeError: The runtime optuna version 3.2.0 is no longer compatible with the table "
    "schema (set up by optuna 3.1.1). Please execute `$ optuna storage upgrade --storage "
    "$STORAGE_URL` for upgrading the storage."
)
OLDER_REFUSES = (
    "RuntimeError: The runtime optuna version 3.1.1 is no longer compatible with the table "
    "schema (set up by optuna 3.2.0). Please try updating optuna to the latest version by "
    "`$ pip install -U optuna`."
)


def worker(
    index: int, version: str, code: int | None = 0, stderr: str = "", **flags: Any
) -> WorkerRun:
    return WorkerRun(index, version, code, 1.0, stderr, "same-order", **flags)


def case(
    older: str = "3.6.1",
    newer: str = "5.0.0",
    *,
    policy: str = "none",
    mode: str = "sequential",
    storage: str = "sqlite",
    creator: str | None = None,
    missing: int = 0,
    runs: list[WorkerRun] | None = None,
    collect_error: str | None = None,
) -> CaseRecord:
    """A finished 4-worker case whose duplicates equal its missing points (capped budget)."""
    spec = Case(older, newer, creator or older, policy, mode, storage)
    runs = runs or [worker(i, spec.version_of(i)) for i in range(4)]
    return CaseRecord(
        case_id=spec.id,
        older=older,
        newer=newer,
        creator=spec.creator,
        seed_policy=policy,
        mode=mode,
        storage=storage,
        scenario=spec.scenario.id,
        study="s",
        workers=runs,
        collected_with=spec.creator,
        collect_error=collect_error,
        trials=24,
        complete=24,
        missing=missing,
        duplicates=missing,
        same_id_duplicates=0,
        colliding_id_duplicates=missing,
        seconds=1.0,
        expected=expectations.rolling_expected(older, newer, mode, policy).outcome,
        expected_storage=expectations.storage_expected(older, newer, storage).outcome,
    )


def test_pairs_are_parsed_ordered_and_latest_resolved() -> None:
    """``A+B`` in either order becomes (older, newer); latest is the newest release."""
    assert plan.parse_pair("3.6.1+latest") == ("3.6.1", "latest")
    assert plan.resolve([("latest", "3.6.1"), ("3.6.1", "5.0.0")], "5.0.0") == [("3.6.1", "5.0.0")]
    assert plan.resolve([("3.2.0", "3.10.0")], None) == [("3.2.0", "3.10.0")]


@pytest.mark.parametrize(
    "text", ["3.2.0", "3.2.0+3.6.1+4.0.0", "3.2.0+3.2.0", "3.2+x", "4.0.0b0+5.0.0"]
)
def test_malformed_pairs_are_refused(text: str) -> None:
    with pytest.raises(ReproError):
        plan.parse_pair(text)


def test_bad_input_is_one_line_and_exit_2() -> None:
    """The command line answers a malformed pair with one line and exit 2, before any work."""
    done = subprocess.run(
        [sys.executable, "-m", "repro.rolling", "run", "--pair", "3.2.0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "must look like 3.2.0+3.6.1" in done.stderr


def test_cases_cover_both_orders_and_alternate_workers_creator_first() -> None:
    todo = plan.cases([("3.2.0", "3.6.1"), ("4.0.0", "5.0.0")], storages=("sqlite", "journal"))
    assert len(todo) == 2 * 2 * 2 * 2 * 2
    assert len({c.id for c in todo}) == len(todo)
    by_newer = next(c for c in todo if c.creator == "3.6.1")
    assert [by_newer.version_of(i) for i in range(4)] == ["3.6.1", "3.2.0", "3.6.1", "3.2.0"]
    assert by_newer.scenario.id == f"{by_newer.mode}-{by_newer.seed_policy}-sqlite-w4-g24"


def test_a_refused_schema_is_its_own_outcome_with_the_message() -> None:
    """The joiner's refusal is 'refused' even though the study then misses points: a storage
    the older release cannot open is not the same failure as a grid that loses points."""
    runs = [
        worker(0, "3.2.0"),
        worker(1, "3.1.1", 1, f"Traceback ...\n{OLDER_REFUSES}"),
        worker(2, "3.2.0"),
        worker(3, "3.1.1", 1, OLDER_REFUSES),
    ]
    refused = case("3.1.1", "3.2.0", creator="3.2.0", missing=12, runs=runs)
    assert refused.storage_compat == records.REFUSED
    assert refused.outcome == "refused"
    assert refused.refusal == OLDER_REFUSES
    assert verdict.violations(refused) == []
    assert records.refusal(NEWER_REFUSES) == NEWER_REFUSES


@pytest.mark.parametrize(
    ("runs", "collect_error", "missing", "outcome", "compat"),
    [
        (None, None, 0, "exact", records.OK),
        (None, None, 7, "lost-points", records.OK),
        ([worker(i, v) for i, v in enumerate(["3.6.1", "3.6.1"])], None, 0, "exact", "not-shown"),
        (
            [worker(0, "3.6.1"), worker(1, "5.0.0", None, "", timed_out=True)],
            None,
            0,
            "hung",
            "not-shown",
        ),
        (
            [worker(0, "3.6.1"), worker(1, "5.0.0", 1, "ValueError: x"), worker(2, "5.0.0")],
            None,
            0,
            "worker-failed",
            records.OK,
        ),
        (None, "collect exited 1", 0, "collect-failed", records.OK),
    ],
)
def test_outcome_is_the_first_failure_that_applies(
    runs: list[WorkerRun] | None,
    collect_error: str | None,
    missing: int,
    outcome: str,
    compat: str,
) -> None:
    measured = case(runs=runs, collect_error=collect_error, missing=missing)
    assert (measured.outcome, measured.storage_compat) == (outcome, compat)


def test_violations_only_where_an_outcome_is_forced() -> None:
    assert verdict.violations(case(policy="shared")) == []
    assert verdict.violations(case(policy="shared", missing=3))  # expected exact
    assert verdict.violations(case(policy="none"))  # expected loses-points, none lost
    assert verdict.violations(case(policy="none", missing=5)) == []
    # disagree forces nothing either way
    assert verdict.violations(case("3.2.0", "5.0.0")) == []
    assert verdict.violations(case("3.2.0", "5.0.0", missing=4)) == []
    # a storage that should refuse but did not
    assert verdict.violations(case("3.1.1", "3.2.0"))
    # a different order in one worker breaks "exact" even without a lost point
    runs = [worker(i, "5.0.0") for i in range(3)] + [WorkerRun(3, "4.0.0", 0, 1.0, "", "x")]
    assert verdict.violations(case("4.0.0", "5.0.0", runs=runs))


def _pair_cases(none_missing: int, shared_missing: int) -> list[CaseRecord]:
    return [
        case("3.6.1", "5.0.0", policy="none", missing=none_missing),
        case("3.6.1", "5.0.0", policy="shared", missing=shared_missing),
    ]


@pytest.mark.parametrize(
    ("none_missing", "shared_missing", "expected"),
    [(0, 0, verdict.SAFE), (6, 0, verdict.SAFE_WITH_SEED), (6, 2, verdict.UNSAFE)],
)
def test_verdict_per_pair(none_missing: int, shared_missing: int, expected: str) -> None:
    judged = verdict.verdict_of(_pair_cases(none_missing, shared_missing))
    assert judged.verdict == expected
    assert judged.advice == verdict.ADVICE[expected]


def test_a_refusal_decides_the_verdict() -> None:
    runs = [worker(i, v) for i, v in enumerate(["3.1.1", "3.2.0", "3.1.1", "3.2.0"])]
    runs[1] = worker(1, "3.2.0", 1, NEWER_REFUSES)
    judged = verdict.verdict_of(
        [case("3.1.1", "3.2.0", runs=runs, missing=6), case("3.1.1", "3.2.0", storage="journal")]
    )
    assert judged.verdict == verdict.REFUSES
    assert judged.refused_storages == ["sqlite"]
    assert judged.refusals == [NEWER_REFUSES]
    assert judged.violations == []


def test_every_default_pair_has_one_expectation_row_with_sources() -> None:
    pairs = plan.resolve(plan.DEFAULT_PAIRS, "5.0.0")
    for older, newer in pairs:
        for mode in plan.MODES:
            for policy in plan.SEED_POLICIES:
                row = expectations.rolling_expected(older, newer, mode, policy)
                assert row.cite
                assert all(c.startswith("https://github.com/optuna/optuna/") for c in row.cite)
        for storage in plan.STORAGES:
            assert expectations.storage_expected(older, newer, storage).cite
    assert expectations.storage_expected("3.1.1", "3.2.0", "postgresql").outcome == "refused"
    assert expectations.storage_expected("3.1.1", "3.2.0", "journal").outcome == "ok"
    assert expectations.storage_expected("3.2.0", "5.0.0", "sqlite").outcome == "ok"
    assert expectations.rolling_expected("4.0.0", "5.0.0", "concurrent", "none").outcome == "exact"


def _file(cases: list[CaseRecord]) -> RollingFile:
    return RollingFile(
        cases=cases,
        environments=[records.Environment("3.6.1", False, 0.0, None)],
        command="python -m repro.rolling run",
        wall_seconds=12.5,
        pairs=[["3.6.1", "5.0.0"]],
    )


def test_json_round_trip_is_strict_and_schema_checked(tmp_path: Path) -> None:
    data = _file(_pair_cases(6, 0))
    path = tmp_path / records.FILENAME
    verdict.save(path, data)

    def no_constants(token: str) -> None:
        raise AssertionError(f"non-strict JSON token {token}")

    raw = json.loads(path.read_text(), parse_constant=no_constants)
    assert raw["verdicts"][0]["verdict"] == verdict.SAFE_WITH_SEED
    assert raw["cases"][0]["outcome"] == "lost-points"
    assert records.load(path) == data
    path.write_text(dumps({**raw, "schema": records.SCHEMA + 1}))
    with pytest.raises(FormatError, match="newer version"):
        records.load(path)


def test_a_partial_run_keeps_the_other_cases(tmp_path: Path) -> None:
    earlier = _file(_pair_cases(6, 0))
    fresh = _file([case("3.6.1", "5.0.0", policy="shared", missing=1)])
    merged = records.merge(earlier, fresh, replaced={fresh.cases[0].case_id})
    assert [c.missing for c in merged.cases] == [6, 1]
    assert merged.wall_seconds == 25.0


def test_section_renders_from_the_json_alone(tmp_path: Path) -> None:
    path = tmp_path / records.FILENAME
    verdict.save(path, _file(_pair_cases(6, 0)))
    lines = section.section_from_json(path)
    text = "\n".join(lines)
    assert lines[0] == section.TITLE
    assert "3.6.1 + 5.0.0 | **safe only with a shared seed** | 0/1 | 1/1" in text
    assert "| 3.6.1 + 5.0.0 | sequential | none | ✗ 6·6 |" in text
    assert verdict.ADVICE[verdict.SAFE_WITH_SEED] in text


@pytest.mark.skipif(
    not (RESULTS / records.FILENAME).exists(), reason="no results/rolling.json committed yet"
)
def test_committed_measurement_agrees_with_the_expectation_table() -> None:
    """Every forced outcome in results/rolling.json (exact, loses-points, refused) holds, the
    stored verdicts are the ones its cases give, and rolling.md is rendered from it as is."""
    committed = records.load(RESULTS / records.FILENAME)
    raw = json.loads((RESULTS / records.FILENAME).read_text())
    assert [verdict.violations(c) for c in committed.cases if verdict.violations(c)] == []
    recomputed = [v.to_json() for v in verdict.verdicts(committed.cases, committed.pairs)]
    assert raw["verdicts"] == recomputed
    rendered = "\n".join(section.render(raw)) + "\n"
    assert (RESULTS / "rolling.md").read_text(encoding="utf-8") == rendered


def _fake_python(tmp_path: Path, name: str, body: str) -> Path:
    script = tmp_path / name
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


@pytest.mark.xdist_group("processes")
def test_a_hung_worker_is_killed_and_recorded(tmp_path: Path) -> None:
    """A worker that never exits is killed at its timeout, with its stderr, and the next one
    still runs."""
    hang = _fake_python(tmp_path, "hang", "echo 'stuck in barrier' >&2; exec tail -f /dev/null")
    done = _fake_python(tmp_path, "done", 'echo \'{"order_fingerprint": "abc"}\'')
    runs = launch.run_sequential(
        [("3.6.1", [str(hang)]), ("5.0.0", [str(done)])], limit=1.0, logs=tmp_path
    )
    assert runs[0].timed_out
    assert runs[0].exit_code is None
    assert "stuck in barrier" in runs[0].stderr_tail
    assert (runs[1].exit_code, runs[1].order_fingerprint) == (0, "abc")


@pytest.mark.xdist_group("processes")
def test_a_failed_concurrent_worker_stops_the_others(tmp_path: Path) -> None:
    """The others would wait at the barrier for a round that cannot complete: they are stopped
    at once instead of running into their timeout."""
    hang = _fake_python(tmp_path, "hang", "exec tail -f /dev/null")
    refuse = _fake_python(tmp_path, "refuse", f"echo '{OLDER_REFUSES}' >&2; exit 1")
    runs = launch.run_concurrent(
        [("3.2.0", [str(hang)]), ("3.1.1", [str(refuse)])], limit=60.0, logs=tmp_path
    )
    assert runs[0].stopped
    assert not runs[0].timed_out
    assert runs[1].exit_code == 1
    assert records.refusal(runs[1].stderr_tail) == OLDER_REFUSES


def _index_unreachable(error: str) -> bool:
    return any(
        text in error.lower()
        for text in ("failed to fetch", "error sending request", "dns", "connect", "network")
    )


@pytest.mark.xdist_group("processes")
def test_two_releases_share_one_sqlite_study() -> None:
    """The installed Optuna creates the study and a cached second release (4.0.0, or 3.6.1 when
    4.0.0 is installed) joins it: both open the file, each worker runs in its own interpreter,
    and the forced outcome of the pair holds (exact for 4.x + 4.x/5.x, points lost for 3.6.1,
    a second grid order for 3.2.0)."""
    here = installed_version("optuna")
    other = "4.0.0" if here != "4.0.0" else "3.6.1"
    env = envs.ensure(envs.DEFAULT_ROOT, other, sys.executable, envs.find_uv())
    if env.error is not None and _index_unreachable(env.error):
        pytest.skip(
            f"the package index is unreachable, so Optuna {other} cannot be installed: {env.error}"
        )
    assert env.error is None, env.error
    older, newer = sorted((here, other), key=version_key)
    spec = Case(older, newer, here, "none", "sequential", "sqlite")
    pythons = {here: Path(sys.executable), other: envs.python_in(env.path)}
    measured = launch.run_case(spec, pythons, launch.Limits(worker=120, barrier=60))
    assert [w.version for w in measured.workers] == [here, other, here, other]
    assert all(w.ok for w in measured.workers), [w.stderr_tail for w in measured.workers]
    assert measured.storage_compat == records.OK
    assert measured.collect_error is None
    assert measured.complete == 24
    assert verdict.violations(measured) == []
    families = {expectations.grid_family(v).name for v in (here, other)}
    # Different families never share a grid order (a seeded shuffle is not the product order;
    # two OS-entropy shuffles equal seed 0's with probability 1/24!).
    assert (measured.orders_distinct >= 2) == (len(families) == 2)


def test_a_case_the_harness_cannot_run_is_recorded_not_raised() -> None:
    """One case that cannot run (here: no environment for a release) must not end the
    measurement of the others: it is a record with its cause."""
    spec = Case("3.6.1", "5.0.0", "3.6.1", "none", "sequential", "sqlite")
    measured = launch.run_case(spec, {}, launch.Limits())
    assert measured.outcome == "not-run"
    assert measured.error is not None
    assert "KeyError" in measured.error
    assert verdict.violations(measured) == []
