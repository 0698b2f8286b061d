"""Write ``results/upstream/``: the issue body, its title, the comment for #5489, the
attachments (``details.md``, the report, its chart, the files with its long tables, the JSON
zipped) and ``pr/`` (the pull request's title and description, and the alternatives' JSON its
tables print), all from the JSON files alone.

Same JSON in, same bytes out: the zip has fixed timestamps, modes and order. When the
measurements contradict the issue's premise, no body is written and stale ones are removed.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from repro import report, results
from repro.errors import ReproError
from repro.jsonfile import write_atomic, write_json
from repro.timeline.render import MARKDOWN_NAME as TIMELINE_MD
from repro.upstream import details, pr, render, script_run
from repro.upstream import facts as facts_mod
from repro.upstream import upstream_docs as docs

ISSUE = "issue.md"
TITLE = "title.txt"
COMMENT = "comment-5489.md"
DETAILS = "details.md"
PR = "pr"
PR_TITLE = f"{PR}/title.txt"
PR_DESCRIPTION = f"{PR}/description.md"
ALTERNATIVES = f"{PR}/alternatives.json"
ALTERNATIVES_SCHEMA = 1
REPORT = report.REPORT
CHART_NAME = report.CHART_NAME
ZIP = "results.zip"
# The rendered files attached as they are, each with the command that renders it from the JSON:
# report.md names the others instead of linking them.
RENDERED = {
    **dict.fromkeys((REPORT, CHART_NAME, *report.FILES[1:]), "nox -s report"),
    TIMELINE_MD: "python -m repro.timeline --render",
}
ATTACHMENTS = (DETAILS, *RENDERED, ZIP)
BODIES = (ISSUE, TITLE, COMMENT, DETAILS, PR_TITLE, PR_DESCRIPTION, ALTERNATIVES)
# The earliest time a zip entry can carry: no clock is read, so the bytes repeat.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class BundleError(ReproError):
    """An attachment is missing or too large for GitHub."""


@dataclass(frozen=True)
class Written:
    """What one run of the writer did, for the session's output."""

    premise_failed: str | None
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def zipped(results_dir: Path, sources: list[Path]) -> bytes:
    """The JSON files as one zip, named relative to ``results_dir``, sorted, timestamps fixed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(sources, key=lambda p: p.relative_to(results_dir).as_posix()):
            info = zipfile.ZipInfo(path.relative_to(results_dir).as_posix(), date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever the host, so the bytes do not vary
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return buffer.getvalue()


def _check_size(name: str, size: int) -> None:
    limit = docs.ATTACHMENT_LIMITS[Path(name).suffix]
    if size > limit:
        raise BundleError(f"{name}: {size} bytes, GitHub takes at most {limit} for this type")


def _no_body(out_dir: Path, reason: str) -> Written:
    """The premise failed: remove bodies an earlier run left, so none is filed by mistake."""
    for name in BODIES:
        (out_dir / name).unlink(missing_ok=True)
    return Written(premise_failed=reason)


def write(results_dir: Path, out_dir: Path, new_issue: int | None = None) -> Written:
    """Write the bundle for the measurements in ``results_dir`` into ``out_dir``."""
    files = results.load_all(results_dir)
    if not files:
        raise facts_mod.PremiseError(
            f"{results_dir}: no optuna-*.json results; run `nox -s repro` first"
        )
    reason = facts_mod.premise(files[-1])
    if reason is not None:
        return _no_body(out_dir, reason)
    facts = facts_mod.gather(results_dir)
    reason = facts_mod.script_premise(facts.script)
    if reason is not None:
        return _no_body(out_dir, reason)

    for name, command in RENDERED.items():
        if not (results_dir / name).is_file():
            raise BundleError(f"{results_dir / name}: missing; render it with `{command}`")
    written: list[Path] = []
    for name, data in (
        *((name, (results_dir / name).read_bytes()) for name in RENDERED),
        (ZIP, zipped(results_dir, facts.sources)),
    ):
        _check_size(name, len(data))
        write_atomic(out_dir / name, data)
        written.append(out_dir / name)
    script_text = script_run.script_path(results_dir).read_text(encoding="utf-8")
    texts = [
        (ISSUE, render.issue(facts, script_text, ATTACHMENTS)),
        (TITLE, render.title(facts) + "\n"),
        (COMMENT, render.comment(facts, new_issue)),
        (DETAILS, details.details(facts)),
    ]
    for name in (PR_TITLE, PR_DESCRIPTION, ALTERNATIVES):
        (out_dir / name).unlink(missing_ok=True)
    if facts.alternatives is not None and facts.fix is not None:
        write_json(out_dir / ALTERNATIVES, facts.alternatives.to_json(), schema=ALTERNATIVES_SCHEMA)
        written.append(out_dir / ALTERNATIVES)
        texts += [
            (PR_TITLE, pr.title() + "\n"),
            (PR_DESCRIPTION, pr.description(facts, new_issue)),
        ]
    for name, text in texts:
        write_atomic(out_dir / name, text)
        written.append(out_dir / name)
    return Written(premise_failed=None, files=written, notes=facts.notes)
