"""The search-space corpus: values keep their types through JSON, drawing and loading are
repeatable, the strategies keep their bounds, the judge reads Optuna's recording of equal
values, and corpus runs never touch the default matrix's report."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from repro import report, results
from repro.corpus import cases, judge, records
from repro.corpus import report as corpus_report
from repro.corpus.cases import Case, Corpus, CorpusError
from repro.corpus.strategies import (
    MAX_GRID,
    MAX_PARAMS,
    MAX_VALUES,
    MAX_WORKERS,
    MIN_WORKERS,
    draw_corpus,
    search_spaces,
)
from repro.corpus.strategies import cases as case_strategy
from repro.metrics import value_key
from repro.results import RunRecord
from repro.scenarios import MODES, SEED_POLICIES, GridValue, SearchSpace, matrix

from .helpers import ONCE_PER_CI, RESULTS, ROOT, run_record

CORPUS = RESULTS / "corpus.json"
TRICKY: list[GridValue] = [
    1,
    1.0,
    True,
    "1",
    0,
    0.0,
    -0.0,
    False,
    None,
    "None",
    "",
    math.nan,
    math.inf,
    -math.inf,
    2**63,
    5e-324,
    "1.0",
]


def typed(value: GridValue) -> tuple[type, str, bool]:
    """Type, value (every NaN equal) and sign: equal only for the very same value."""
    negative = isinstance(value, float) and math.copysign(1.0, value) < 0
    return type(value), value_key(value), negative


def through_json(space: SearchSpace) -> SearchSpace:
    return cases.decode_space(json.loads(json.dumps(cases.encode_space(space))))


@given(search_spaces())
@example(tuple(sorted((f"p{i}", (v,)) for i, v in enumerate(TRICKY))))
@example((("a", tuple(TRICKY[:8])),))
def test_the_json_round_trip_keeps_every_value_and_its_type(space: SearchSpace) -> None:
    back = through_json(space)
    assert [n for n, _ in back] == [n for n, _ in space]
    for (_, values), (_, decoded) in zip(space, back):
        assert [typed(v) for v in decoded] == [typed(v) for v in values]


@pytest.mark.parametrize(
    "item",
    [
        ["float", "1"],
        ["float", "1e0"],
        ["float", 1.0],
        ["int", 1.0],
        ["int", True],
        ["bool", 1],
        ["none", 0],
        ["str", 1],
        ["complex", "1j"],
        "1",
        ["int"],
    ],
)
def test_a_value_that_would_change_type_is_rejected(item: object) -> None:
    with pytest.raises(CorpusError, match="value"):
        cases.decode_value(item)


def test_a_corpus_file_round_trips(tmp_path: Path) -> None:
    corpus = Corpus(draw_corpus(12, seed=1), seed=1, hypothesis="x", max_grid=MAX_GRID)
    cases.save(tmp_path / "corpus.json", corpus)
    back = cases.load(tmp_path / "corpus.json")
    assert [c.digest for c in back.cases] == [c.digest for c in corpus.cases]
    assert (back.seed, back.max_grid, back.storage) == (1, MAX_GRID, "journal")


def test_drawing_twice_from_one_seed_gives_the_same_cases() -> None:
    """Same ids, same spaces: what makes the committed corpus reproducible with the
    Hypothesis version that drew it."""
    first, second = draw_corpus(15, seed=5489), draw_corpus(15, seed=5489)
    assert [c.id for c in first] == [f"case-{i:03d}" for i in range(15)]
    assert [(c.id, c.digest) for c in first] == [(c.id, c.digest) for c in second]


def test_loading_the_committed_corpus_twice_gives_the_same_cases() -> None:
    first, second = cases.load(CORPUS), cases.load(CORPUS)
    assert [(c.id, c.digest) for c in first.cases] == [(c.id, c.digest) for c in second.cases]
    assert [c.id for c in first.cases] == [f"case-{i:03d}" for i in range(len(first.cases))]
    assert len(first.cases) >= 100


@given(search_spaces())
def test_search_spaces_keep_their_bounds(space: SearchSpace) -> None:
    assert 1 <= len(space) <= MAX_PARAMS
    assert math.prod(len(v) for _, v in space) <= MAX_GRID
    for _, values in space:
        assert 1 <= len(values) <= MAX_VALUES
        assert len({value_key(v) for v in values}) == len(values)
        assert all(v is None or type(v) in (int, float, str, bool) for v in values)


@given(case_strategy(max_grid=12))
def test_cases_keep_their_bounds(case: Case) -> None:
    assert MIN_WORKERS <= case.workers <= MAX_WORKERS
    assert case.mode in MODES
    assert case.seed_policy in SEED_POLICIES
    assert 1 <= case.grid_size <= 12


@given(st.data(), st.integers(1, 4), st.integers(1, 8))
def test_a_small_grid_bound_is_kept(data: st.DataObject, max_params: int, max_grid: int) -> None:
    space = data.draw(search_spaces(max_params=max_params, max_grid=max_grid))
    assert len(space) <= max_params
    assert math.prod(len(v) for _, v in space) <= max_grid


def test_committed_corpus_covers_the_bounds() -> None:
    corpus = cases.load(CORPUS)
    sizes = [c.grid_size for c in corpus.cases]
    assert max(sizes) >= 200
    assert {c.workers for c in corpus.cases} == set(range(MIN_WORKERS, MAX_WORKERS + 1))
    assert {(c.mode, c.seed_policy) for c in corpus.cases} == {
        (m, p) for m in MODES for p in SEED_POLICIES
    }
    kinds = {type(v) for c in corpus.cases for _, values in c.space for v in values}
    assert kinds == {int, float, str, bool, type(None)}


def test_corpus_scenario_ids_never_collide_with_the_default_matrix() -> None:
    corpus = cases.load(CORPUS)
    ids = [c.scenario().id for c in corpus.cases]
    assert len(set(ids)) == len(ids)
    assert not set(ids) & {s.id for s in matrix()}


# --- the judge -----------------------------------------------------------------------------


def run_of(case: Case, params: list[GridValue], grid_ids: list[int]) -> RunRecord:
    """A finished sequential run of a one-parameter case, recorded as Optuna would."""
    from repro.metrics import TrialRecord, compute

    trials = [
        TrialRecord(number=i, state="COMPLETE", params={"a": p}, grid_id=g, worker=0)
        for i, (p, g) in enumerate(zip(params, grid_ids))
    ]
    return run_record(
        case.scenario(),
        measured=compute(trials, case.space),
        trial_log=[t.to_json() for t in trials],
        case_id=case.id,
    )


def test_equal_values_recorded_alike_are_not_a_lost_point() -> None:
    """[1, True]: Optuna stores True as 1, so a perfect run shows one missing True and one
    duplicate 1 in the raw counts; against the grid as recorded, nothing is lost."""
    case = Case("case-x", "sequential", "shared", 2, (("a", (1, True)),))
    record = run_of(case, [1, 1], [0, 1])
    assert (record.missing, record.colliding_id_duplicates) == (1, 1)
    recorded = records.Probe(case.id, case.digest, {"a": [[["bool", True], ["int", 1]]]})
    assert judge.judge(record, case, recorded, "3.6.1") == judge.Verdict("holds", 0, 0, 2)
    as_given = records.Probe(case.id, case.digest)
    assert judge.judge(record, case, as_given, "3.6.1").outcome == "fails"


def test_a_lost_point_fails_and_a_re_evaluated_grid_id_does_not() -> None:
    case = Case("case-y", "sequential", "per-worker", 3, (("a", (0, 1)),))
    probe = records.Probe(case.id, case.digest)
    lost = run_of(case, [0, 0], [0, 1])
    assert judge.judge(lost, case, probe, "3.6.1") == judge.Verdict("fails", 1, 1, 0)
    again = run_of(case, [0, 1, 1], [0, 1, 1])
    assert judge.judge(again, case, probe, "3.6.1").outcome == "holds"


def test_a_probe_of_another_corpus_is_not_used() -> None:
    case = Case("case-z", "sequential", "shared", 2, (("a", (0, 1)),))
    stale = records.Probe(case.id, "0" * 16)
    assert judge.judge(run_of(case, [0, 1], [0, 1]), case, stale, "3.6.1").outcome == "unprobed"


def test_the_probe_measures_how_optuna_records_equal_values() -> None:
    from repro.corpus.replay import probe

    case = Case("case-p", "sequential", "shared", 2, (("a", (1, True, 1.0, "1", 0.0, -0.0)),))
    measured = probe(case)
    assert measured.error is None
    assert measured.recorded_as == {
        "a": [
            [["bool", True], ["int", 1]],
            [["float", "1.0"], ["int", 1]],
            [["float", "-0.0"], ["float", "0.0"]],
        ]
    }


# --- the committed results -----------------------------------------------------------------


def committed() -> tuple[Corpus, list[results.ResultsFile]]:
    return cases.load(CORPUS), results.load_all(RESULTS)


def test_every_case_has_a_run_in_every_version() -> None:
    """Under GridSampler every case, under each remedy every case it applies to."""
    corpus, files = committed()
    assert len(files) == 3
    for f in files:
        total = 0
        for remedy in cases.REMEDIES:
            found = judge.case_runs(corpus.cases, f.runs, remedy)
            applies = [
                c.id
                for c in corpus.cases
                if judge.not_applicable(c, remedy, f.optuna_version, corpus.storage) is None
            ]
            assert sorted(found) == applies, (f.optuna_version, remedy)
            total += len(applies)
        assert len([r for r in f.runs if r.case_id]) == total


def test_stored_summaries_are_recomputable() -> None:
    corpus, files = committed()
    for f in files:
        side = records.load(records.path_for(RESULTS, f.optuna_version))
        assert side is not None, f.optuna_version
        again = judge.tally(corpus.cases, f.runs, side.probes, f.optuna_version, corpus.max_grid)
        assert side.summary == again


def test_every_shrunk_space_was_confirmed() -> None:
    """A stored minimal failing space failed again in a fresh run, and its snippet, run as a
    script with Optuna alone, reported a lost point; `none` is never shrunk."""
    _, files = committed()
    for f in files:
        side = records.load(records.path_for(RESULTS, f.optuna_version))
        assert side is not None
        assert [s.seed_policy for s in side.shrunk] == list(SEED_POLICIES)
        for s in side.shrunk:
            assert s.status != "shrunk" or s.seed_policy != "none"
            if s.status == "shrunk":
                assert s.confirmation is not None
                assert s.confirmation["outcome"] == "fails"
                assert s.snippet_check is not None
                assert s.snippet_check["exit"] == 1
                ast.parse(s.snippet)


@ONCE_PER_CI
def test_corpus_runs_leave_the_report_as_it_is() -> None:
    """The matrix report ignores runs with a case id: rendering the committed files with and
    without them gives the same bytes, and so does adding a crashed, point-losing corpus run
    whose scenario looks like a matrix one."""
    _, files = committed()
    plain = [dataclasses.replace(f, runs=[r for r in f.runs if r.case_id is None]) for f in files]
    assert report.render(files) == report.render(plain)
    template = plain[0].runs[0]
    intruder = dataclasses.replace(
        template, missing=9, duplicates=9, error="boom", case_id="case-999"
    )
    noisy = [dataclasses.replace(plain[0], runs=[intruder, *plain[0].runs]), *plain[1:]]
    assert report.render(noisy) == report.render(plain)
    assert report.render_dir(RESULTS) == (RESULTS / "report.md").read_text(encoding="utf-8")


def test_a_replay_keeps_the_matrix_runs_and_drops_only_stale_cases() -> None:
    from repro.corpus.replay import merge_runs

    corpus, files = committed()
    earlier = files[0].runs
    first, second = corpus.cases[0], corpus.cases[1]
    fresh = [r for r in earlier if r.case_id == first.id]
    stale = dataclasses.replace(
        next(r for r in earlier if r.case_id == second.id), search_space=[["zz", [1]]]
    )
    merged, dropped = merge_runs([*earlier, stale], fresh, corpus)
    assert [r for r in merged if r.case_id is None] == [r for r in earlier if r.case_id is None]
    assert dropped == 1
    assert [r for r in merged if r.case_id] == [r for r in earlier if r.case_id]


@ONCE_PER_CI
def test_every_number_in_the_corpus_tables_is_in_the_json() -> None:
    corpus, files = committed()
    numbers: set[str] = set()

    def collect(value: object) -> None:
        if isinstance(value, dict):
            for v in value.values():
                collect(v)
        elif isinstance(value, list):
            for v in value:
                collect(v)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers.update({f"{value:g}", f"{abs(value):g}"})
        elif isinstance(value, str):
            numbers.update(re.findall(r"\d+(?:\.\d+)?", value))

    for path in [CORPUS, *RESULTS.glob("optuna-*.json"), *RESULTS.glob("corpus-*.json")]:
        collect(json.loads(path.read_text()))
    lines = corpus_report.render_section(files, CORPUS)
    rows = [line for line in lines if line.startswith("|") and not set(line) <= {"|", "-"}]
    assert len(rows) > len(corpus.cases)
    for line in rows:
        for number in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", line):
            assert f"{float(number):g}" in numbers or number in numbers, (number, line)


def test_the_section_needs_neither_optuna_nor_hypothesis() -> None:
    code = (
        "import sys, repro.corpus.report; "
        "print('optuna' in sys.modules, 'hypothesis' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["False", "False"]


# --- command line --------------------------------------------------------------------------


def corpus_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "repro.corpus", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "--corpus", "no/such.json"], "does not exist; draw one with"),
        (["replay", "--cases", "0"], "0 must be at least 1"),
        (["generate", "--cases", "x"], "'x' is not a whole number"),
        (["shrink", "--policy", "sometimes"], "invalid choice: 'sometimes'"),
        (["replay", "--timeout", "-1"], "-1 must be a finite number of seconds above 0"),
        (["replay", "--remedy", "x2"], "invalid choice: 'x2'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = corpus_cli(*args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr


def test_a_broken_corpus_or_a_missing_replay_says_what_to_do(tmp_path: Path) -> None:
    bad = tmp_path / "corpus.json"
    case = {"id": "c", "mode": "sequential", "seed_policy": "shared", "workers": 2}
    bad.write_text(
        json.dumps({"schema": 1, "cases": [{**case, "space": [["a", [["float", "1"]]]]}]})
    )
    done = corpus_cli("replay", "--corpus", str(bad))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "['float', '1']" in done.stderr
    done = corpus_cli("shrink", "--results", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "run `python -m repro.corpus replay` first" in done.stderr


@pytest.mark.xdist_group("processes")
def test_a_replay_merges_into_an_existing_results_file(tmp_path: Path) -> None:
    """Two tiny cases replayed for real (GridSampler only, `--remedy grid`) next to a matrix
    run: the matrix run stays, the cases get runs with their case ids, and the side file has a
    probe per case."""
    from repro import _compat
    from repro.corpus.replay import replay

    matrix_run = dataclasses.replace(results.load_all(RESULTS)[0].runs[0], case_id=None)
    path = results.results_path(tmp_path, _compat.OPTUNA_VERSION)
    results.save(path, results.ResultsFile(_compat.OPTUNA_VERSION, "", "", {}, [matrix_run]))
    tiny = cases.numbered(
        [
            Case("", "sequential", "per-worker", 2, (("a", (0, 1)),)),
            Case("", "threads", "none", 2, (("a", (1, True, None)),)),
        ]
    )
    corpus = Corpus(tiny, seed=0, hypothesis="x", max_grid=4)
    replay(
        corpus, tiny, tmp_path, remedies=["grid"], jobs=1, timeout=60, progress=False, command="t"
    )
    merged = results.load(path)
    assert merged.runs[0] == matrix_run
    assert [r.case_id for r in merged.runs[1:]] == ["case-000", "case-001"]
    assert all(r.error is None for r in merged.runs)
    side = records.load(records.path_for(tmp_path, _compat.OPTUNA_VERSION))
    assert side is not None
    assert sorted(side.probes) == ["case-000", "case-001"]
    assert side.summary["verdicts"]["case-001"]["collapsed"] == 2


@pytest.mark.xdist_group("processes")
def test_a_matrix_run_keeps_the_corpus_runs(tmp_path: Path) -> None:
    """The other direction: `python -m repro run` replaces its own scenarios only, so the
    corpus runs (and their case ids) survive it."""
    from repro import _compat

    corpus_run = next(r for r in results.load_all(RESULTS)[0].runs if r.case_id is not None)
    path = results.results_path(tmp_path, _compat.OPTUNA_VERSION)
    results.save(path, results.ResultsFile(_compat.OPTUNA_VERSION, "", "", {}, [corpus_run]))
    args = ["--out", str(tmp_path), "-q", "-r", "1", "--space", '{"x": [0, 1]}', "--workers", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "repro", "run", *args, "-s", "threads-none-journal-*"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    runs = results.load(path).runs
    assert runs[0] == corpus_run
    assert [r.scenario for r in runs[1:]] == ["threads-none-journal-w2-custom-499986ee"]


def test_recorded_grid_tells_apart_values_python_calls_equal() -> None:
    """Cases whose values compare equal in Python (0.0 == 0 == False) have grids recorded
    apart: judged one after another (as a shrink does), neither gets the other's grid."""
    from repro.corpus.records import Probe

    keys = []
    for value in (False, 0, 0.0):
        case = Case("shrink", "sequential", "per-worker", 2, (("a", (value,)),))
        probe = Probe(case.id, case.digest, recorded_as={}, warnings=[], error=None)
        keys.append(set(judge.recorded_grid(case, probe)))
    assert keys[0] != keys[1] != keys[2] != keys[0]
