"""The report is rendered from the JSON in results/ alone, byte for byte, and every number in
its tables is in that JSON; each of its files fits a GitHub issue or comment, and report.md
links to nothing a paste would break. Nothing here holds the results as they were committed:
after any valid run (`nox -s repro`, which may record a known Optuna fault as such) the files
are regenerated from the JSON that is there and compared, and every figure is checked against
that JSON."""

from __future__ import annotations

import itertools
import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from repro import expectations, remedies, report, results
from repro.report.render import CORPUS
from repro.results import ResultsFile
from repro.timeline.render import MARKDOWN_NAME as TIMELINE
from repro.upstream.upstream_docs import BODY_LIMIT
from repro.versions import version_key

from .helpers import ONCE_PER_CI, RESULTS, ROOT, link_targets, run_cli

pytestmark = ONCE_PER_CI

# What a reader may paste or attach: the report's files and the timeline's, which it names.
PASTABLE = (*report.FILES, TIMELINE)
# The one site links may point to: upstream Optuna's sources, issues and pull requests.
UPSTREAM = "https://github.com/optuna/optuna/"


def committed(name: str) -> str:
    return (RESULTS / name).read_text(encoding="utf-8")


def newest() -> ResultsFile:
    """The newest release among the per-version results files."""
    return max(results.load_all(RESULTS), key=lambda f: version_key(f.optuna_version))


def newest_fix() -> tuple[str, str]:
    """Read from the target directories alone: the newest release a patched build measured,
    and its first patched target by label; what the candidate-fix section must describe."""
    patched = []
    for path in sorted(RESULTS.glob("target-*/target.json")):
        provenance = json.loads(path.read_text())["provenance"]
        if provenance["patches"] and any(path.parent.glob("optuna-*.json")):
            patched.append((provenance["optuna_version"], provenance["label"]))
    assert patched, "no patched target measured"
    release = max((version for version, _ in patched), key=version_key)
    return release, next(label for version, label in patched if version == release)


@pytest.mark.parametrize("name", report.FILES)
def test_committed_report_is_regenerated_byte_for_byte(name: str) -> None:
    assert results.load_all(RESULTS), "no results in results/"
    assert report.render_files(RESULTS)[name] == committed(name)


def test_readme_block_is_rendered_from_the_json() -> None:
    """The README's first screen says what the JSON in results/ says: its findings block is
    what `python -m repro report` renders for that JSON (it rewrites the block)."""
    from repro.report import readme

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    expected = "\n" + "\n".join(report.readme_block(results.load_all(RESULTS))) + "\n"
    assert readme.block(text) == expected
    assert len(text) <= 12_000
    assert text.index(readme.START) < text.index("## The two commands")


def test_report_command_writes_every_file_beside_the_report(tmp_path: Path) -> None:
    """`python -m repro report --out` puts the report where asked and its other files beside
    it, the same bytes as results/ holds; the README is left alone. The chart is put there
    first (the command redraws it where matplotlib is installed), since the report names it
    only when it is beside it."""
    import shutil

    readme_before = (ROOT / "README.md").read_bytes()
    if (RESULTS / report.CHART_NAME).exists():
        shutil.copy(RESULTS / report.CHART_NAME, tmp_path / report.CHART_NAME)
    done = run_cli("report", "--results", str(RESULTS), "--out", str(tmp_path / "report.md"))
    assert done.returncode == 0, done.stderr
    for name in report.FILES:
        assert (tmp_path / name).read_text(encoding="utf-8") == committed(name), name
    assert (ROOT / "README.md").read_bytes() == readme_before


@pytest.mark.parametrize("name", PASTABLE)
def test_each_file_fits_a_github_issue_or_comment(name: str) -> None:
    assert len(committed(name)) <= BODY_LIMIT


def test_summary_fits_one_screen() -> None:
    """Everything before the first fold: the verdict per version, the files, the SQLite
    table."""
    top = committed(report.REPORT).split("<details>", 1)[0]
    assert "## Summary" in top
    assert len(top.splitlines()) <= 50


@pytest.mark.parametrize("name", PASTABLE)
def test_links_only_to_upstream_optuna(name: str) -> None:
    """A pasted body resolves relative links against the issue's URL, so the files link only
    to upstream Optuna, absolutely; this project's files are named in text."""
    targets = link_targets(committed(name))
    assert [t for t in targets if not t.startswith(UPSTREAM)] == []
    if name == report.REPORT:
        assert targets, "expected links to upstream sources"


def test_report_names_the_files_it_leaves_out() -> None:
    """The report names the files beside it, and only those that are there."""
    text = committed(report.REPORT)
    for name in (*report.FILES[1:], TIMELINE, report.CHART_NAME):
        assert (f"`{name}`" in text) == (RESULTS / name).exists(), name


def test_link_check_sees_relative_links_and_images() -> None:
    text = '[a](../README.md) ![c](report-chart.png) <a href="x.md">x</a>\n'
    assert link_targets(text) == ["../README.md", "report-chart.png", "x.md"]


def test_results_cover_every_pinned_version_and_scenario() -> None:
    """What `nox -s repro` leaves in results/: every pinned version, every scenario of the
    matrix, and no matrix run that failed except by a known Optuna fault (such a run is
    recorded as that fault, e.g. optuna#5138 on a journal file before 3.6, and counted as an
    error in the report); tests/test_corpus.py covers the corpus runs."""
    from repro.expectations import known_fault
    from repro.scenarios import matrix

    files = results.load_all(RESULTS)
    versions = [f.optuna_version for f in files]
    assert versions[:2] == ["3.2.0", "3.6.1"]
    assert len(versions) == 3
    for f in files:
        assert {r.scenario for r in f.runs} >= {s.id for s in matrix()}
        failed = [r for r in f.errors if r.case_id is None and not known_fault(r, f.optuna_version)]
        assert failed == []


@pytest.mark.parametrize("name", PASTABLE)
def test_every_table_number_is_in_the_json(name: str) -> None:
    text = committed(name)
    numbers: set[str] = set()
    # Per-version files, timeline.json, corpus files, upstream's tests; each target's files.
    for path in [*RESULTS.glob("*.json"), *RESULTS.glob("target-*/*.json")]:
        data = json.loads(path.read_text())

        def collect(value: object) -> None:
            if isinstance(value, dict):
                for v in value.values():
                    collect(v)
            elif isinstance(value, list):
                for v in value:
                    collect(v)
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                # The cell's sign is outside the number the pattern below extracts.
                numbers.update({f"{value:g}", f"{abs(value):g}", str(abs(value))})
            elif isinstance(value, str):
                numbers.update(re.findall(r"\d+(?:\.\d+)?", value))

        collect(data)
    # The details' storage families pool a remedy's runs over the storages that got the same
    # verdicts, a grouping the runs decide anew on every run: each pooled cell is derived
    # from the runs in the JSON, for every subset of storages, with the function that pools.
    files = results.load_all(RESULTS)
    storages = sorted({r.storage for f in files for r in f.runs if r.case_id is None})
    for size in range(2, len(storages) + 1):
        for subset in itertools.combinations(storages, size):
            for pooled in remedies.pooled(files, subset).values():
                collect([pooled.missing_mean, pooled.extra_mean, *pooled.lost_wilson95])
    rows = [
        line for line in text.splitlines() if line.startswith("|") and not set(line) <= {"|", "-"}
    ]
    assert rows, "no table rows: the check would pass vacuously"
    for line in rows:
        for cell in line.split("|"):
            # Links carry line numbers of upstream source and #N names an upstream issue:
            # neither is a measurement.
            cell = re.sub(r"\(https?://[^)]*\)|#\d+", "", cell)
            for number in re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", cell):
                assert f"{float(number):g}" in numbers or number in numbers, (number, line)


def test_report_does_not_need_optuna() -> None:
    code = "import sys, repro.report, repro.cli; print('optuna' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("name", report.FILES)
def test_report_renders_as_github_markdown(name: str) -> None:
    """Every table block parses as a table."""
    from markdown_it import MarkdownIt

    text = committed(name)
    html = MarkdownIt("commonmark").enable("table").render(text)
    separators = [line for line in text.splitlines() if re.fullmatch(r"\|(---\|)+", line)]
    assert separators
    assert html.count("<table>") == len(separators)


def test_chart_is_a_png_that_fits_a_comment() -> None:
    png = (RESULTS / report.CHART_NAME).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert 600 <= width <= 1000
    assert height < width


def test_markdown_helper_builds_tables_folds_and_code_spans_that_parse() -> None:
    """A code span holding a pipe and backticks stays one cell of a table inside a fold."""
    from markdown_it import MarkdownIt

    from repro import markdown as md

    cell = md.code("x|`y`")
    lines = md.details("<b>t</b>", [*md.table(["a", "b"], [["1", cell], ["2", ""]]), ""])
    assert lines[2:6] == ["| a | b |", "|---|---|", f"| 1 | {cell} |", "| 2 | |"]
    html = MarkdownIt("commonmark").enable("table").render("\n".join(lines))
    assert html.count("<td>") == 4
    assert "<code>x|`y`</code>" in html
    assert "<summary><b>t</b></summary>" in html


def test_verdicts_are_plain_data_decided_from_the_json() -> None:
    """What the report says per version is decided as frozen records without Markdown."""
    import dataclasses

    from repro.report.verdicts import AdviceChecked, Tally, VersionVerdict, decide

    found = decide(results.load_all(RESULTS))
    by_version = {v.version: v for v in found.versions}
    records: list[VersionVerdict | AdviceChecked] = [*found.versions, *found.advice]
    for record in records:
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.version = "0"  # type: ignore[misc]
        text = json.dumps(dataclasses.asdict(record))
        assert not re.search(r"`|\*\*|\|", text), text
    # The #5489 tally is the runs of that scenario in the JSON; what the code forces (the
    # expectation table's `exact` / `loses-points`, which valid results agree with) decides
    # the advice: 3.6.1 loses points without a seed, the releases the table holds exact
    # without one do not, and the newest loses points with a seed per worker.
    from repro.scenarios import UPSTREAM

    for f in results.load_all(RESULTS):
        runs = [r for r in f.runs if r.scenario == UPSTREAM.id and r.error is None]
        expected = Tally(sum(1 for r in runs if r.missing), len(runs))
        assert by_version[f.optuna_version].upstream == expected
    lost_on_361 = by_version["3.6.1"].upstream
    assert lost_on_361 is not None
    assert lost_on_361.lost == lost_on_361.runs > 0
    exact_without_seed = tuple(
        v for v in by_version if expectations.expected(v, "sequential", "none").outcome == "exact"
    )
    assert "3.6.1" not in exact_without_seed
    latest = newest().optuna_version
    assert latest in exact_without_seed
    assert by_version["3.6.1"].what_to_do.seed_fix == "same-seed"
    assert by_version["3.6.1"].what_to_do.exact_elsewhere == exact_without_seed
    assert by_version[latest].what_to_do.seed_fix is None
    assert expectations.expected(latest, "sequential", "per-worker").outcome == "loses-points"
    assert by_version[latest].what_to_do.avoid_per_worker_seeds


def test_advice_follows_the_measurements() -> None:
    """The newest release, which loses points with a seed per worker (its expectation row),
    with every run made clean gets no advice and passes every check."""
    import dataclasses

    from repro.report.verdicts import decide

    f = newest()
    (measured,) = decide([f]).versions
    assert measured.losing_pairs > 0
    assert measured.what_to_do.avoid_per_worker_seeds
    clean_runs = [
        dataclasses.replace(
            r, missing=0, duplicates=0, same_id_duplicates=0, colliding_id_duplicates=0
        )
        for r in f.runs
    ]
    clean = dataclasses.replace(f, runs=clean_runs)
    (verdict,) = decide([clean]).versions
    assert verdict.losing_pairs == 0
    assert not verdict.what_to_do.avoid_per_worker_seeds
    (advice,) = decide([clean]).advice
    assert advice.seed.verdict == "not-needed"
    assert advice.single_job.verdict == "not-needed"
    assert advice.with_duplicates == 0
    assert "Nothing: no run lost a point." in report.render([clean])


def test_why_the_versions_differ_is_told_by_the_records() -> None:
    """The report tells why from the upstream change records and the expectation rows, and a
    row that starts at a later release refers to the change released there instead of
    retelling it."""
    from repro import expectations
    from repro.timeline import changes as upstream_changes

    text = (RESULTS / "report.md").read_text(encoding="utf-8")
    why = text.split("<b>Why the versions differ</b>", 1)[1].split("</details>", 1)[0]
    changes = [c for c in upstream_changes.in_window("3.2.0", "5.0.0") if c.behavioural]
    assert [c.pull_request for c in changes] == [4918, 5490]
    summary = text.split("## Summary", 1)[1].split("<details>", 1)[0]
    for change in changes:
        assert f"- **{change.title}**: {change.summary}\n" in why
        assert change.title in summary
    for row in expectations.TABLE:
        if row.since == "3.2.0":
            assert row.why in why
            continue
        assert "PR #" not in row.why
        assert any(c.release == row.since and c.behavioural for c in upstream_changes.CHANGES)


def test_chart_bars_are_the_matrix_runs_only() -> None:
    """Corpus runs (other grids, own section) do not move the chart, as they do not move the
    tables; the bars are the tables' means."""
    import dataclasses

    from repro.report import chart
    from repro.report.verdicts import decide

    files = results.load_all(RESULTS)
    assert any(r.case_id is not None for f in files for r in f.runs), "no corpus runs to leave out"
    matrix = [dataclasses.replace(f, runs=[r for r in f.runs if r.case_id is None]) for f in files]
    bars = chart.bars(decide(files))
    assert bars == chart.bars(decide(matrix))
    # 3.6.1, sequential, no seed: the mean missing over every run on every storage, from the
    # JSON; 3.2.0's sequential workers are exact under every seed policy (forced).
    runs = [
        r
        for f in matrix
        if f.optuna_version == "3.6.1"
        for r in f.runs
        if r.in_matrix and (r.mode, r.seed_policy) == ("sequential", "none") and r.error is None
    ]
    assert bars["missing", "sequential", "3.6.1"][0] == pytest.approx(
        sum(r.missing for r in runs) / len(runs), abs=0.01
    )
    assert bars["missing", "sequential", "3.2.0"] == [0, 0, 0]


def fix_section() -> str:
    text = committed(report.REPORT)
    return text.split("<b>A candidate fix for distinct per-worker seeds</b>", 1)[1].split(
        "</details>", 1
    )[0]


def test_fix_section_names_the_lines_the_patch_touches() -> None:
    """Every line the fix's patch removes from `_grid.py` is linked upstream at the tag of
    the release its hunks count (its header's), and nothing else of `_grid.py` is, but the
    line a pure insertion follows; the patched file's line numbers are named. The patch also
    touches other files (a test, the docs): only `_grid.py`'s hunks are read here, as its
    links are the ones checked."""
    from repro.report import fix
    from repro.report.render_fix import release_tag
    from repro.upstream.upstream_docs import GRID_PY

    found = fix.decide(RESULTS)
    assert found is not None
    assert found.release == newest_fix()[0]
    assert [p.record.path for p in found.patches] == ["patches/grid-shared-order.patch"]
    patch = (ROOT / found.patches[0].record.path).read_text(encoding="utf-8")
    # The hunks count the lines of the release the patch was written against, as its header
    # says; a build of a later release applies them at an offset, so they link at that one.
    based = re.search(r"Against Optuna (\d+(?:\.\d+)+)", patch.split("\ndiff --git ", 1)[0])
    tag = release_tag(based[1] if based else found.release)
    # This file's part of the diff: from its `--- a/` header to the next file's.
    grid_part = patch.split(f"\n--- a/{GRID_PY}\n", 1)[1].split("\n--- a/", 1)[0]
    removed: set[int] = set()
    linked_expected: set[int] = set()
    added: list[int] = []
    old = new = 0
    pending_insert: int | None = None
    for line in grid_part.splitlines()[1:]:
        header = re.match(r"@@ -(\d+),\d+ \+(\d+),\d+ @@", line)
        if header:
            old, new = int(header.group(1)), int(header.group(2))
        elif line.startswith("-"):
            removed.add(old)
            pending_insert = None
            old += 1
        elif line.startswith("+"):
            added.append(new)
            if not removed & {old - 1} and pending_insert is None:
                pending_insert = old - 1
            new += 1
        else:
            if pending_insert is not None and not removed & {pending_insert}:
                linked_expected.add(pending_insert)
            pending_insert = None
            old, new = old + 1, new + 1
    linked_expected |= removed
    section = fix_section()
    linked: set[int] = set()
    # The list of touched lines (the paragraph before it cites the expectation row's lines).
    touched = section.split("The lines it touches", 1)[1].split("\n\nMatrix runs", 1)[0]
    tags = re.findall(re.escape(f"{UPSTREAM}blob/") + r"([^/]+)/" + re.escape(GRID_PY), touched)
    assert set(tags) == {tag}
    prefix = re.escape(f"{UPSTREAM}blob/{tag}/{GRID_PY}#L")
    for first, last in re.findall(prefix + r"(\d+)(?:-L(\d+))?\)", touched):
        linked |= set(range(int(first), int(last or first) + 1))
    assert removed == {109, 110, 111, 112, 113, 131}  # the docstring of `seed`, the shuffle
    assert linked == linked_expected == removed | {2}  # `import hashlib` goes after line 2
    assert (min(added), max(added)) == (3, 143)
    for named in ("adds line 3", "with lines 110-115", "with lines 133-143"):
        assert named in section, named


def test_fix_section_names_every_target_with_its_provenance_and_tests() -> None:
    """Each target directory with a matrix measured (its own, or the fix's release's beside
    the pinned results) is named with its label, sha256 or commit and patches with their
    sha256, and upstream's passed/failed counts for it, all as the JSON records them."""
    section = fix_section()
    release = newest_fix()[0]
    provenances = [
        json.loads(path.read_text())["provenance"]
        for path in sorted(RESULTS.glob("target-*/target.json"))
        if any(path.parent.glob("optuna-*.json"))
        or (
            path.parent.name == f"target-{release}"
            and (RESULTS / f"optuna-{release}.json").exists()
        )
    ]
    assert len(provenances) >= 2, "expected the fix and another target"
    rows = [line for line in section.splitlines() if re.match(r"\| `[^`]+` \| `", line)]
    assert len(rows) == len(provenances)
    tests = json.loads((RESULTS / "upstream-tests.json").read_text())["runs"]
    for p in provenances:
        row = next(line for line in section.splitlines() if line.startswith(f"| `{p['label']}` |"))
        assert p["sha256"] or p["commit"]
        for value in (p["sha256"], p["commit"], *(x["sha256"] for x in p["patches"])):
            assert value is None or f"`{value}`" in row, (p["label"], value)
        run = tests[p["label"]]
        assert f"{run['passed']} passed, {run['failed']} failed" in row


def test_fix_is_exact_in_the_summary_only_as_the_json_says() -> None:
    """The summary's word on the fix carries the counts of its results files: matrix runs
    that lost points and corpus cases that failed."""
    release, label = newest_fix()
    directory = RESULTS / f"target-{label}"
    f = results.load(directory / f"optuna-{release}.json")
    matrix = [r for r in f.runs if r.in_matrix and r.error is None]
    lost = sum(1 for r in matrix if r.missing or r.duplicates)
    corpus = directory / f"corpus-{release}.json"
    by_policy = json.loads(corpus.read_text())["summary"]["by_policy"] if corpus.exists() else []
    fails = sum(row["fails"] for row in by_policy)
    cases = sum(row["measured"] for row in by_policy)
    crashed = sum(row["errors"] + row["known_faults"] + row["unprobed"] for row in by_policy)
    summary = committed(report.REPORT).split("## Summary", 1)[1].split("<details>", 1)[0]
    # The fix's release is among the pinned ones: its row is where the word goes.
    row = next(line for line in summary.splitlines() if line.startswith(f"| **{release}** |"))
    exact = bool(matrix) and lost == 0 and cases > 0 and fails == crashed == 0
    note = (
        f"Not released: a candidate fix (`{label}`, below) measured exact under every seed "
        f"policy: {lost}/{len(matrix)} matrix runs lost points, {fails}/{cases} corpus cases "
        "failed."
    )
    assert (note in row) == exact
    assert summary.count("Not released") == exact


def test_fix_not_exact_or_patch_changed_is_said_so(tmp_path: Path) -> None:
    """A patched build that lost points gets no word in the summary, and a patch file that
    is not the one measured (sha256) has its lines left out rather than misreported."""
    import dataclasses
    import shutil

    from repro.report import fix
    from repro.report.verdicts import Tally

    def lost(f: ResultsFile) -> Tally:
        matrix = [r for r in f.runs if r.in_matrix and r.error is None]
        return Tally(sum(1 for r in matrix if r.missing), len(matrix))

    def cell(t: Tally) -> str:
        return f"**{'✗' if t.lost else '✓'} {t.lost}/{t.runs}**"

    shutil.copytree(RESULTS, tmp_path / "results", ignore=shutil.ignore_patterns("upstream"))
    doctored = tmp_path / "results"
    release, label = newest_fix()
    target = doctored / f"target-{label}"
    path = target / f"optuna-{release}.json"
    f = results.load(path)
    # As the release measures: workers with their own seeds in their own processes lose points.
    lost_runs = [
        dataclasses.replace(r, missing=2)
        if r.seed_policy == "per-worker" and r.mode != "threads"
        else r
        for r in f.runs
    ]
    results.save(path, dataclasses.replace(f, runs=lost_runs))
    doctored_tally = lost(results.load(path))
    assert doctored_tally.lost > 0
    provenance = json.loads((target / "target.json").read_text())
    provenance["provenance"]["patches"][0]["sha256"] = "cd" * 32
    (target / "target.json").write_text(json.dumps(provenance))

    found = fix.decide(doctored)
    assert found is not None
    assert not found.exact_everywhere
    assert found.fix.label == label
    assert found.fix.total == doctored_tally
    (patch,) = found.patches
    assert not patch.as_measured
    text = report.render_files(doctored)[report.REPORT]
    summary = text.split("<details>", 1)[0]
    assert "Not released" not in summary
    assert "cannot be shown: the file is now" in text
    assert "replaces [line" not in text
    # The release, then the doctored fix, over every mode and seed policy.
    release_tally = lost(results.load(doctored / f"optuna-{release}.json"))
    assert f"| **all** | {cell(release_tally)} | {cell(doctored_tally)} |" in text


def test_coverage_chance_of_disagreeing_workers() -> None:
    """The per-run bound: the default grid's partition probability (the figure in
    repro/scenarios.py), and tiny grids counted by enumeration."""
    import itertools
    from fractions import Fraction
    from math import comb

    from repro.report.fix import coverage_probability

    partition = Fraction(comb(18, 6) * comb(12, 6), comb(24, 6) ** 3)
    assert coverage_probability(24, 4, 6) == partition
    assert f"{float(partition):.1e}" == "7.0e-09"
    for grid, workers, each in [(4, 2, 2), (3, 2, 2), (5, 3, 2), (4, 3, 1)]:
        subsets = list(itertools.combinations(range(grid), each))
        draws = list(itertools.product(subsets, repeat=workers))
        covering = sum(1 for d in draws if len(set().union(*d)) == grid)
        assert coverage_probability(grid, workers, each) == Fraction(covering, len(draws))


def test_fix_records_are_plain_data() -> None:
    import dataclasses

    from repro.report import fix

    found = fix.decide(RESULTS)
    assert found is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        found.release = "0"  # type: ignore[misc]
    text = json.dumps(dataclasses.asdict(found), default=str)
    assert not re.search(r"\*\*|\|", text.replace(found.patches[0].hunks, "")), text[:200]
    # The newest release measured with a patch, its first patched build, then every other
    # target with a matrix of its own, by label.
    release, label = newest_fix()
    measured = sorted(
        json.loads(path.read_text())["provenance"]["label"]
        for path in RESULTS.glob("target-*/target.json")
        if any(path.parent.glob("optuna-*.json"))
    )
    release_measured = release in measured or (RESULTS / f"optuna-{release}.json").exists()
    assert (found.release, found.fix.label) == (release, label)
    assert [t.label for t in found.targets] == [
        *([release] if release_measured else []),
        label,
        *(x for x in measured if x not in (release, label)),
    ]


@pytest.mark.xdist_group("processes")
def test_report_of_a_custom_run_states_only_what_was_run(tmp_path: Path) -> None:
    """A run of one's own shape (another space, 3 workers, SQLite only): every figure the
    report gives about what was run is read back from its JSON, each claim says what it
    covers, and the report names no file that is not beside it."""
    from repro.scenarios import MODES

    out = tmp_path / "custom"
    space = '{"x": [0, 1, 2], "y": ["a", "b"]}'
    ran = run_cli(
        *("run", "--space", space, "--workers", "3", "--storage", "sqlite", "--out", str(out)),
        # One run per launch mode (seed none) keeps it cheap; the claims must still hold.
        *("-s", "*-none-sqlite-*", "-r", "1", "--remedies", "none", "-j", "2", "-q"),
    )
    assert ran.returncode in (0, 1), ran.stderr
    done = run_cli("report", "--results", str(out))
    assert done.returncode == 0, done.stderr
    (f,) = results.load_all(out)
    text = (out / report.REPORT).read_text(encoding="utf-8")
    runs = f.runs
    assert {r.workers for r in runs} == {3}
    assert {r.storage for r in runs} == {"sqlite"}
    grid = {r.grid_size for r in runs}
    assert grid == {6}
    measured = text.split("Measured: ", 1)[1].split("\n", 1)[0]
    assert measured == (
        f"Optuna {f.optuna_version}: {len(runs)} GridSampler runs (0 more under the remedies), "
        "3 workers, 6-point grid, on `sqlite`, every launch mode."
    )
    assert "The #5489 pattern: 3 worker processes" in text
    assert "of a 6-point grid" in text
    assert "over every storage" not in text
    assert "a grid of 6 points (`x`: 3 values, `y`: 2 values), 3 workers of 2 trials each" in text
    # The summary's #5489 tally is the JSON's runs of that scenario.
    upstream = [r for r in runs if (r.mode, r.seed_policy) == ("sequential", "none")]
    lost = sum(1 for r in upstream if r.missing and r.error is None)
    finished = sum(1 for r in upstream if r.error is None)
    assert f"| **{f.optuna_version}** | {lost}/{finished} |" in text
    # The threads mode ran with n_jobs = the workers.
    assert "`n_jobs=4`" not in text
    # Reproductions of the default grid would not reproduce this space: left out, saying so.
    assert "Left out: the scripts reproduce the default 24-point grid with 4 workers" in text
    assert "uv run NAME" not in text
    # Only the files that are there are named: no corpus here, the chart only if drawn.
    assert not (out / CORPUS).exists()
    assert f"`{CORPUS}`" not in text
    assert (f"`{report.CHART_NAME}`" in text) == (out / report.CHART_NAME).exists()
    assert set(MODES) == {r.mode for r in runs}
