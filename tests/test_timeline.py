"""The release timeline: release lists and ranges, transitions on hand-built data, the JSON
round trip, the committed timeline, and one-line errors; targets beside the releases (placed,
compared, rendered with their provenance). No network and no environment made, except one
test that measures a git direct reference for real."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import pytest

from repro import targets
from repro.jsonfile import FormatError
from repro.results import RunRecord
from repro.timeline import __main__ as cli
from repro.timeline import envs, measure, plot, records, releases, render
from repro.timeline.records import Release, TargetPoint, Timeline

from .helpers import ONCE_PER_CI, RESULTS, run_record

# The timeline measures releases in environments of its own; the installed Optuna serves at
# most as a source tree for the git reference test, which any release is.
pytestmark = ONCE_PER_CI

PIP_INDEX = """\
optuna (5.0.0)
Available versions: 5.0.0, 5.0.0rc1, 4.9.0, 4.1.0, 4.0.0, 4.0.0b0, 3.6.2, 3.4.0, 3.3.0, \
3.2.0, 3.1.1, 3.0.0.dev0
"""

SEQ_NONE = "sequential-none-sqlite-w4-g24"
SEQ_PER = "sequential-per-worker-sqlite-w4-g24"
CONC_SHARED = "concurrent-shared-sqlite-w4-g24"
FIX = "5.0.0+grid-shared-order"


def exact(scenario: str = SEQ_NONE) -> list[RunRecord]:
    return [run_record(scenario, repetition=i) for i in range(2)]


def losing(scenario: str = SEQ_NONE) -> list[RunRecord]:
    return [run_record(scenario, missing=7, orders=4, repetition=i) for i in range(2)]


def racy(scenario: str) -> list[RunRecord]:
    return [
        run_record(scenario, missing=2, same_id=2, repetition=0),
        run_record(scenario, repetition=1),
    ]


def ok(version: str, runs: list[RunRecord]) -> Release:
    return Release(version, records.OK, None, runs=runs)


def test_pip_index_output_gives_final_releases_oldest_first() -> None:
    assert releases.parse_pip_index(PIP_INDEX) == [
        "3.1.1",
        "3.2.0",
        "3.3.0",
        "3.4.0",
        "3.6.2",
        "4.0.0",
        "4.1.0",
        "4.9.0",
        "5.0.0",
    ]


def test_pip_index_output_without_versions_is_an_error() -> None:
    with pytest.raises(releases.ReleaseError, match="--versions"):
        releases.parse_pip_index("ERROR: No matching distribution found for optuna\n")


def test_range_is_inclusive_and_latest_means_newest() -> None:
    available = releases.parse_pip_index(PIP_INDEX)
    assert releases.in_range(available, "3.2.0", "latest") == [
        "3.2.0",
        "3.3.0",
        "3.4.0",
        "3.6.2",
        "4.0.0",
        "4.1.0",
        "4.9.0",
        "5.0.0",
    ]
    assert releases.in_range(available, "3.3.0", "4.0.0") == ["3.3.0", "3.4.0", "3.6.2", "4.0.0"]
    # Bounds need not be releases; 3.10 sorts after 3.6, not before 3.2.
    assert releases.in_range(["3.10.0", "3.6.2", "3.2.0"], "3.5", None) == ["3.6.2", "3.10.0"]


@pytest.mark.parametrize(
    ("start", "stop", "message"),
    [
        ("9.9.9", None, "no release in --from 9.9.9: the releases are 3.1.1 .. 5.0.0"),
        ("4.0.0", "3.2.0", "--from 4.0.0 is after --to 3.2.0"),
        ("3.5.0", "3.5.9", "no release in --from 3.5.0 --to 3.5.9"),
    ],
)
def test_empty_or_reversed_ranges_are_errors(start: str, stop: str | None, message: str) -> None:
    with pytest.raises(releases.ReleaseError, match=message):
        releases.in_range(releases.parse_pip_index(PIP_INDEX), start, stop)


def test_explicit_versions_are_checked_and_ordered() -> None:
    assert releases.explicit(["4.0.0", "3.10.0", "3.2.0", "4.0.0"]) == ["3.2.0", "3.10.0", "4.0.0"]
    for bad in ("3", "latest", "4.0.0rc1", "v3.2.0", "3.2.0;rm", "1.2.3.4"):
        with pytest.raises(releases.ReleaseError, match="is not a release number"):
            releases.explicit([bad])


def test_classify_uses_the_outcomes_of_the_expectation_table() -> None:
    assert records.classify(exact(), "3.2.0") == "exact"
    assert records.classify(losing(), "3.6.1") == "loses-points"
    assert records.classify(racy(CONC_SHARED), "3.2.0") == "racy"
    assert records.classify([run_record(error="boom")], "3.2.0") == records.NO_DATA
    # Lost in one run with disagreeing orders, exact in the other: no single outcome fits.
    mixed = [run_record(missing=7, orders=4), run_record(repetition=1)]
    assert records.classify(mixed, "3.6.1") == records.MIXED


def test_transitions_both_directions_with_their_source_change() -> None:
    """Seed None: exact until 3.3.0, points lost from 3.4.0, exact again from 4.0.0."""
    found = records.transitions(
        [
            ok("4.0.0", exact()),
            ok("3.3.0", exact()),
            ok("3.4.0", losing()),
            ok("3.6.2", losing()),
        ]
    )
    assert [(t.from_version, t.to_version, t.direction) for t in found] == [
        ("3.3.0", "3.4.0", "worse"),
        ("3.6.2", "4.0.0", "better"),
    ]
    assert all(t.explained for t in found)
    assert found[0].change.startswith("PR #4918, v3.3.0 → v3.4.0")
    assert "blob/v3.4.0/optuna/samplers/_grid.py#L133-L138" in found[0].change
    assert found[1].change.startswith("PR #5490, v3.6.2 → v4.0.0")
    assert "blob/v4.0.0/optuna/samplers/_grid.py#L123" in found[1].change


def test_a_failed_install_is_a_gap_not_a_transition() -> None:
    found = records.transitions(
        [
            ok("3.3.0", exact()),
            Release("3.4.0", records.INSTALL_FAILED, "no wheel"),
            Release("3.4.1", records.IMPORT_FAILED, "ImportError"),
            ok("3.5.0", losing()),
            ok("3.6.2", losing()),
        ]
    )
    assert len(found) == 1
    assert (found[0].from_version, found[0].to_version) == ("3.3.0", "3.5.0")
    assert found[0].unmeasured == ["3.4.0", "3.4.1"]
    assert found[0].explained


def test_a_scenario_whose_runs_all_failed_is_a_gap_too() -> None:
    found = records.transitions(
        [ok("3.3.0", exact()), ok("3.4.0", [run_record(error="crash")]), ok("3.4.1", losing())]
    )
    assert [(t.from_version, t.to_version, t.unmeasured) for t in found] == [
        ("3.3.0", "3.4.1", ["3.4.0"])
    ]


def test_a_transition_with_no_source_change_is_reported_as_unexplained() -> None:
    """_grid.py is identical at 4.1.0 and 4.2.0: the text says so instead of guessing."""
    found = records.transitions([ok("4.1.0", exact()), ok("4.2.0", losing())])
    assert len(found) == 1
    assert not found[0].explained
    assert found[0].change.startswith("**Unexplained**")
    assert "byte-identical" in found[0].change


def test_a_change_that_predicts_other_outcomes_does_not_explain() -> None:
    """A shared seed is exact on both sides of PR #4918; a measured change there is news."""
    scenario = "sequential-shared-sqlite-w4-g24"
    found = records.transitions([ok("3.3.0", exact(scenario)), ok("3.4.0", losing(scenario))])
    assert not found[0].explained
    assert "In this window, PR #4918" in found[0].change


def test_racy_code_that_showed_no_race_still_explains() -> None:
    """Concurrent without a seed is racy on 3.3.0, and a few runs may show no race: exact on
    3.3.0 then points lost on 3.4.0 is still PR #4918's doing."""
    scenario = "concurrent-none-sqlite-w4-g24"
    found = records.transitions([ok("3.3.0", exact(scenario)), ok("3.4.0", losing(scenario))])
    assert found[0].explained
    assert found[0].change.startswith("PR #4918")


def test_the_race_fixed_by_a_shared_shuffle_is_explained() -> None:
    """Concurrent with a shared seed: racy on 3.3.0, exact from 3.4.0 (unique trial numbers)."""
    found = records.transitions([ok("3.3.0", racy(CONC_SHARED)), ok("3.4.0", exact(CONC_SHARED))])
    assert [(t.from_outcome, t.to_outcome, t.direction, t.explained) for t in found] == [
        ("racy", "exact", "better", True)
    ]


def sample_timeline() -> Timeline:
    measured = [
        ok("3.3.0", exact()),
        Release("3.4.0", records.INSTALL_FAILED, "`uv pip install` exited 1: no wheel"),
        ok("3.4.1", losing()),
    ]
    return timeline_of(measured, SEQ_NONE)


def timeline_of(
    measured: list[Release], scenario: str, points: tuple[TargetPoint, ...] = ()
) -> Timeline:
    """A timeline of hand-built releases, as `--versions` with two runs per scenario gives."""
    return Timeline(
        span=[measured[0].version, measured[-1].version],
        versions=measured,
        transitions=records.transitions(measured),
        scenarios=[scenario],
        repetitions=2,
        listed_by="--versions",
        targets=list(points),
    )


def test_timeline_json_round_trip(tmp_path: Path) -> None:
    original = sample_timeline()
    path = tmp_path / records.FILENAME
    records.save(path, original)
    assert records.load(path) == original
    data = json.loads(path.read_text())
    assert data["span"] == ["3.3.0", "3.4.1"]
    assert [v["status"] for v in data["versions"]] == ["ok", "install-failed", "ok"]
    assert data["versions"][2]["outcomes"][0]["measured"] == "loses-points"
    assert data["strategy"]["name"] == "every-release"
    assert data["transitions"][0]["unmeasured"] == ["3.4.0"]


def test_a_schema_1_timeline_loads_and_migrates_with_the_new_names(tmp_path: Path) -> None:
    """A timeline.json written before the renames (`range`, `behaviour`, `from_behaviour`,
    `to_behaviour`) loads to the same records, and migrates to exactly what save writes."""
    path = tmp_path / records.FILENAME
    records.save(path, sample_timeline())
    current = json.loads(path.read_text())
    old = {("range" if k == "span" else k): v for k, v in current.items()}
    old["schema"] = 1
    old["versions"] = [
        {**v, "outcomes": [{old_outcome(k): x for k, x in o.items()} for o in v["outcomes"]]}
        for v in current["versions"]
    ]
    old["transitions"] = [
        {k.replace("_outcome", "_behaviour"): x for k, x in t.items()}
        for t in current["transitions"]
    ]
    path.write_text(json.dumps(old))
    assert records.load(path) == sample_timeline()
    assert records.from_schema_1(old) == current
    path.write_text(json.dumps({**current, "schema": 3}))
    with pytest.raises(FormatError, match="schema 3, this code reads schema 2"):
        records.load(path)


def old_outcome(key: str) -> str:
    return "behaviour" if key == "measured" else key


def test_render_section_reads_the_json_alone(tmp_path: Path) -> None:
    assert render.render_section(tmp_path) == []
    records.save(tmp_path / records.FILENAME, sample_timeline())
    text = "\n".join(render.render_section(tmp_path))
    rows = [line for line in text.splitlines() if line.startswith("| 3.")]
    assert [row.split(" | ")[0] for row in rows[:3]] == ["| 3.3.0", "| 3.4.0", "| 3.4.1"]
    assert "install-failed: 'uv pip install' exited 1: no wheel" in rows[1]
    assert "✗ `loses-points` 7/7 · 7/7" in rows[2]
    assert "(3.4.0 not measured in between)" in text


def test_plot_series_in_release_order_with_gaps() -> None:
    versions, series = plot.series(sample_timeline())
    assert versions == ["3.3.0", "3.4.0", "3.4.1"]
    assert series == {SEQ_NONE: [0.0, None, 7.0]}


def test_committed_timeline_is_consistent_with_its_runs() -> None:
    """Stored outcomes and transitions are what the code derives from the stored runs, and
    timeline.md is rendered from timeline.json byte for byte."""
    path = RESULTS / records.FILENAME
    data = json.loads(path.read_text(encoding="utf-8"))
    loaded = records.load(path)
    assert [v.to_json()["outcomes"] for v in loaded.versions] == [
        v["outcomes"] for v in data["versions"]
    ]
    assert loaded.transitions == records.transitions(loaded.versions)
    rendered = "\n".join(render.markdown(loaded)).rstrip() + "\n"
    assert rendered == (RESULTS / "timeline.md").read_text(encoding="utf-8")
    assert (RESULTS / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--versions", "3.2.0", "3.x"], "--versions '3.x' is not a release number"),
        (["--versions", "3.2.0", "--from", "9.9.9"], "no release in --from 9.9.9"),
        (["--versions", "3.2.0", "-s", "no-such"], "no scenario matches 'no-such'"),
        (["--from", "three"], "--from 'three' is not a release number"),
        (["--versions", "3.2.0", "-r", "0"], "argument -r/--repetitions: 0 must be at least 1"),
        (["--versions", "3.2.0", "--timeout", "nan"], "argument --timeout: nan must be a finite"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = cli.main(args)
    except SystemExit as exc:  # argparse's own errors
        code = int(str(exc.code))
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert message in err


def test_render_without_a_timeline_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--render", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"python -m repro.timeline: error: no {tmp_path / records.FILENAME}; "
        "run `nox -s timeline` first\n"
    )


def test_render_redraws_the_committed_views_from_the_json(tmp_path: Path) -> None:
    """`--render` on a copy of the committed timeline.json writes the committed timeline.md
    byte for byte, and a PNG."""
    pytest.importorskip("matplotlib", reason="the timeline session installs it, tests do not")
    (tmp_path / records.FILENAME).write_bytes((RESULTS / records.FILENAME).read_bytes())
    assert cli.main(["--render", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "timeline.md").read_text(encoding="utf-8") == (
        RESULTS / "timeline.md"
    ).read_text(encoding="utf-8")
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "timeline.json",
        "timeline.md",
        "timeline.png",
    ]


def test_install_commands_use_uv_or_fall_back_to_venv(tmp_path: Path) -> None:
    env = tmp_path / "optuna-3.6.1"
    with_uv = envs.install_commands(env, "3.6.1", "/usr/bin/python3", "/bin/uv")
    assert with_uv[0][:2] == ["/bin/uv", "venv"]
    assert with_uv[1][-1] == "optuna==3.6.1"
    without = envs.install_commands(env, "3.6.1", "/usr/bin/python3", None)
    assert without[0] == ["/usr/bin/python3", "-m", "venv", str(env)]
    assert without[1][:4] == [str(env / "bin" / "python"), "-m", "pip", "install"]


def test_a_cached_environment_is_reused_without_installing(tmp_path: Path) -> None:
    """The cache is keyed on the installed dist-info: present -> reused, absent -> install."""
    env = envs.env_dir(tmp_path, "3.6.1")
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").touch()
    assert not envs.is_cached(env, "3.6.1")
    (env / "lib" / "python3.11" / "site-packages" / "optuna-3.6.1.dist-info").mkdir(parents=True)
    assert envs.is_cached(env, "3.6.1")
    assert not envs.is_cached(env, "3.6.2")
    # "/bin/false" as uv would fail any install: reuse must not call it.
    got = envs.ensure(tmp_path, "3.6.1", sys.executable, "/bin/false")
    assert (got.created, got.error) == (False, None)


@pytest.mark.xdist_group("processes")
def test_a_failed_install_is_recorded_not_raised(tmp_path: Path) -> None:
    settings = measure.Settings(envs=tmp_path, python=sys.executable, uv="/bin/false")
    release = measure.release("3.6.1", [SEQ_NONE], settings)
    assert release.status == records.INSTALL_FAILED
    assert release.error is not None
    assert "exited 1" in release.error
    assert release.runs == []


def broken_env(root: Path, version: str) -> None:
    """A cached environment for ``version`` whose Python cannot import Optuna."""
    env = envs.env_dir(root, version)
    site = env / "lib" / "python3.11" / "site-packages"
    (site / f"optuna-{version}.dist-info").mkdir(parents=True)
    (env / "bin").mkdir()
    python = env / "bin" / "python"
    python.write_text(
        "#!/bin/sh\necho 'ImportError: numpy.core.multiarray failed to import' >&2\nexit 1\n"
    )
    python.chmod(python.stat().st_mode | stat.S_IXUSR)


@pytest.mark.xdist_group("processes")
def test_an_import_failure_is_recorded_with_its_message(tmp_path: Path) -> None:
    """A cached environment whose Python cannot import Optuna: the harness fails, the import
    check names the cause."""
    broken_env(tmp_path, "3.6.1")
    settings = measure.Settings(envs=tmp_path, python=sys.executable, uv=None)
    release = measure.release("3.6.1", [SEQ_NONE], settings)
    assert release.status == records.IMPORT_FAILED
    assert release.error == "ImportError: numpy.core.multiarray failed to import"
    assert release.environment == "reused"


@pytest.mark.xdist_group("processes")
def test_a_timeline_of_unmeasurable_releases_is_written_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole command on two cached environments that cannot import Optuna: both releases
    are recorded as gaps, the three files are written, and the exit status says none was
    measured."""
    pytest.importorskip("matplotlib", reason="the timeline session installs it, tests do not")
    for version in ("3.6.1", "3.6.2"):
        broken_env(tmp_path / "envs", version)
    out = tmp_path / "out"
    args = ["--versions", "3.6.2", "3.6.1", "--envs", str(tmp_path / "envs"), "--out", str(out)]
    assert cli.main([*args, "-s", SEQ_NONE]) == 1
    written = records.load(out / records.FILENAME)
    assert written.span == ["3.6.1", "3.6.2"]
    assert [(r.version, r.status) for r in written.versions] == [
        ("3.6.1", records.IMPORT_FAILED),
        ("3.6.2", records.IMPORT_FAILED),
    ]
    assert (written.scenarios, written.transitions, written.listed_by) == (
        [SEQ_NONE],
        [],
        "--versions",
    )
    markdown = (out / "timeline.md").read_text(encoding="utf-8")
    assert "- **3.6.2** (import-failed): `ImportError: numpy.core.multiarray" in markdown
    assert (out / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "[2/2] 3.6.2: import-failed: ImportError" in capsys.readouterr().err


def target_point(label: str, version: str, runs: list[RunRecord], **provenance: str) -> TargetPoint:
    record = targets.Provenance(label, f"{label}=spec", "direct", "git+file:///repo", version)
    record = targets.Provenance(**{**record.to_json(), **provenance})
    return TargetPoint(version, records.OK, None, runs=runs, label=label, provenance=record)


def test_targets_are_placed_after_the_release_they_come_from() -> None:
    """By the version the build reports: at or above a release, after it; a development or
    pre-release build before the final release it leads to (PEP 440); unknown, last."""
    measured = [ok(v, exact()) for v in ("5.0.0", "3.6.1", "4.0.0")]
    points = [
        target_point("dev", "5.1.0.dev0", []),
        target_point("fix", "5.0.0", []),
        target_point("rc", "4.0.0rc1", []),
        target_point("failed", "", []),
        target_point("old", "3.0.0", []),
    ]
    order = [p.name for p in records.placed(measured, points)]
    assert order == [
        "target old",
        "3.6.1",
        "target rc",
        "4.0.0",
        "5.0.0",
        "target fix",
        "target dev",
        "target failed",
    ]
    assert records.built_from(measured, points[1]) is measured[0]
    assert records.built_from(measured, points[4]) is None
    assert records.built_from(measured, points[3]) is None


def test_a_target_is_judged_by_its_own_expectation_rows() -> None:
    """The same runs (distinct worker seeds, every point evaluated) contradict release 5.0.0's
    row and agree with the candidate fix's row (`TARGET_ROWS`), looked up by the label."""
    fixed = target_point(FIX, "5.0.0", exact(SEQ_PER)).scenario_outcomes()[0]
    assert (fixed.measured, fixed.expected, fixed.agrees) == ("exact", "exact", True)
    other = target_point("other", "5.0.0", exact(SEQ_PER)).scenario_outcomes()[0]
    assert (other.expected, other.agrees) == ("loses-points", False)


def timeline_with_a_target() -> Timeline:
    measured = [ok("4.9.0", losing(SEQ_PER)), ok("5.0.0", losing(SEQ_PER))]
    point = target_point(
        FIX,
        "5.0.0",
        exact(SEQ_PER),
        kind="patched",
        source="package index sdist optuna-5.0.0.tar.gz, patched, built locally",
        sha256="ab" * 32,
    )
    git = target_point("dev", "5.1.0.dev0", losing(SEQ_PER), commit="c0" * 20)
    return timeline_of(measured, SEQ_PER, (git, point))


def test_a_timeline_with_targets_round_trips_and_without_them_has_no_targets_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / records.FILENAME
    data = timeline_with_a_target()
    records.save(path, data)
    assert records.load(path) == data
    stored = json.loads(path.read_text())
    assert [t["provenance"]["commit"] for t in stored["targets"]] == ["c0" * 20, None]
    assert stored["targets"][1]["outcomes"][0]["expected"] == "exact"
    records.save(path, sample_timeline())
    assert "targets" not in json.loads(path.read_text())


def test_a_target_is_rendered_after_its_release_with_its_provenance() -> None:
    """Its row follows the release it comes from, its provenance is named in full, and what
    differs from that release is said; the transitions stay about releases."""
    data = timeline_with_a_target()
    assert data.transitions == []
    lines = render.markdown(data)
    rows = [line.split(" | ")[0] for line in lines if line.startswith("| ")]
    assert rows[1:5] == ["| 4.9.0", "| 5.0.0", f"| target {FIX}", "| target dev"]
    text = "\n".join(lines)
    assert f"sha256 `{'ab' * 32}`" in text
    assert f"commit `{'c0' * 20}`" in text
    label = "sequential · per-worker · sqlite"
    assert f"Against 5.0.0: {label} `loses-points` → `exact`." in text
    assert "Against 5.0.0: the same outcome in every scenario." in text
    assert "2 targets beside them, 2 measured" in text
    summary = "\n".join(render.summary(data))
    assert f"Target **{FIX}**: Against 5.0.0: {label} `loses-points` → `exact`" in summary
    names, series = plot.series(data)
    assert names == ["4.9.0", "5.0.0", f"target {FIX}", "target dev"]
    assert series == {SEQ_PER: [7.0, 7.0, 0.0, 7.0]}


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("what is this", "target 'what is this': not a release number"),
        (
            "optuna @ git+file:///no/such/repository@main",
            "reaching the git repository file:///no/such/repository failed",
        ),
    ],
)
def test_a_bad_target_is_one_line_exit_2_and_the_timeline_is_kept(
    tmp_path: Path, target: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Targets are resolved before any release is measured: nothing is written."""
    (tmp_path / records.FILENAME).write_text("earlier timeline\n")
    args = ["--versions", "3.2.0", "--out", str(tmp_path), "--envs", str(tmp_path / "envs")]
    assert cli.main([*args, "--target", target]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("python -m repro.timeline: error: target ")
    assert message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [records.FILENAME]
    assert (tmp_path / records.FILENAME).read_text() == "earlier timeline\n"


def test_two_targets_with_one_label_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--versions", "3.2.0", "--target", "5.0.0", "--target", "5.0.0"]) == 2
    assert capsys.readouterr().err == (
        "python -m repro.timeline: error: two targets are labelled '5.0.0'; name one with "
        "--target LABEL=SPEC\n"
    )


def test_only_an_immutable_build_reuses_its_environment(tmp_path: Path) -> None:
    """A wheel's sha256 or a git commit names one build; a source tree may change under the
    same commit, so it is installed again every time."""
    known = targets.Provenance("t", "t", "direct", "git+file:///r", commit="c0" * 20)
    plan = targets.Plan(["optuna @ git+file:///r@" + "c0" * 20], known, None)
    assert envs.reusable(plan)
    tree = targets.Provenance("t", "t", "source", "/src", commit="c0" * 20)
    assert not envs.reusable(targets.Plan(["/src"], tree, None))
    moving = targets.Provenance("t", "t", "direct", "https://example.org/optuna.whl")
    assert not envs.reusable(
        targets.Plan(["optuna @ https://example.org/optuna.whl"], moving, None)
    )
    other = targets.Plan(["optuna @ git+file:///r@" + "c1" * 20], known, None)
    assert envs.target_env_dir(tmp_path, plan) != envs.target_env_dir(tmp_path, other)


def installed_optuna_tree(root: Path) -> Path:
    """A source tree of the installed Optuna release: its package files as installed (pure
    Python) and a pyproject.toml with the release's name, version and dependencies from its
    metadata. No download: the test environments have no pip to fetch the sdist with."""
    dist = metadata.distribution("optuna")
    shutil.copytree(
        Path(str(dist.locate_file("optuna"))),
        root / "optuna",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    requires = [json.dumps(r) for r in dist.requires or [] if "extra ==" not in r]
    (root / "pyproject.toml").write_text(
        "[build-system]\n"
        'requires = ["setuptools>=61"]\n'
        'build-backend = "setuptools.build_meta"\n'
        "[project]\n"
        'name = "optuna"\n'
        f"version = {json.dumps(dist.version)}\n"
        f"dependencies = [{', '.join(requires)}]\n"
        "[tool.setuptools.packages.find]\n"
        'include = ["optuna*"]\n'
        "[tool.setuptools.package-data]\n"
        '"*" = ["*"]\n'
    )
    return root


@pytest.mark.xdist_group("processes")
def test_a_git_direct_reference_is_measured_with_the_commit_it_names(tmp_path: Path) -> None:
    """Issue 13, for real, on a local repository (no network to GitHub here): the installed
    release's source committed to git, given as `optuna @ git+file://...@<branch>`, resolved by
    `repro.targets.prepare` (the code git+https goes through), installed into the target's own
    environment, stamped there and measured with one run. The commit is in the provenance
    before and after the install (pip's record of what it checked out), the run is judged
    against the release's row, and a second use reuses the environment."""
    tree = installed_optuna_tree(tmp_path / "optuna")
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@t"]
    for step in (["init", "-q", "-b", "dev"], ["add", "."], ["commit", "-q", "-m", "tree"]):
        subprocess.run([*git, *step], check=True, capture_output=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    plan = targets.prepare(targets.parse(f"head=optuna @ git+file://{tree}@dev"))
    assert plan.install == [f"optuna @ git+file://{tree}@{commit}"]
    settings = measure.Settings(
        envs=tmp_path / "envs", python=sys.executable, uv=envs.find_uv(), repetitions=1
    )
    point = measure.target(plan, [SEQ_NONE], settings)
    assert (point.status, point.error, point.environment) == (records.OK, None, "created")
    assert point.provenance is not None
    assert point.provenance.commit == commit
    assert (point.provenance.label, point.provenance.kind) == ("head", "direct")
    assert point.version == point.provenance.optuna_version == metadata.version("optuna")
    (outcome,) = point.scenario_outcomes()
    # One run decides: the outcome on the default grid is forced on every pinned release
    # ("exact", or "loses-points" up to 7.0e-9 per run; repro/expectations.py).
    assert (outcome.runs, outcome.errors, outcome.agrees) == (1, 0, True)
    again = envs.ensure_target(settings.envs, plan, sys.executable, settings.uv)
    assert (again.created, again.error) == (False, None)


def test_a_target_with_nothing_to_compare_says_why() -> None:
    """Older than every release measured, or not measured itself (its row gives the cause)."""
    old = target_point("old", "3.0.0", exact(SEQ_PER))
    failed = replace(target_point("broken", "", []), status=records.INSTALL_FAILED, error="boom")
    data = timeline_with_a_target()
    data = replace(data, targets=[old, failed])
    text = "\n".join(render.markdown(data))
    assert "Not compared: no release at or below Optuna 3.0.0 was measured." in text
    assert "Not compared: the target was not measured." in text
    assert "| target broken | install-failed: boom |" in text
    assert "- **target broken** (install-failed): `boom`" in text
