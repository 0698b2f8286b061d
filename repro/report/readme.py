"""The README's findings: a block between two HTML comments that ``python -m repro report``
rewrites from the results JSON whenever it writes ``results/report.md`` of this checkout, so the
README's first screen says what the last run found and cannot go stale."""

from __future__ import annotations

from pathlib import Path

from repro.errors import ReproError
from repro.jsonfile import write_atomic

START = "<!-- findings: rendered from results/optuna-*.json by `python -m repro report` -->"
END = "<!-- end of findings -->"
# The checkout this package runs from; an installed package has no README beside it.
CHECKOUT = Path(__file__).resolve().parents[2]
README = CHECKOUT / "README.md"
RESULTS = CHECKOUT / "results"


def block(text: str) -> str:
    """The block as it stands in ``text`` (a README), markers excluded."""
    if START not in text or END not in text:
        raise ReproError(f"the README has no findings block ({START} ... {END})")
    return text.split(START, 1)[1].split(END, 1)[0]


def splice(text: str, lines: list[str]) -> str:
    """``text`` with its block replaced by ``lines``."""
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    return before + START + "\n" + "\n".join(lines) + "\n" + END + after


def update(report_path: Path, lines: list[str]) -> Path | None:
    """Rewrite this checkout's README block when ``report_path`` is this checkout's
    ``results/report.md``; anywhere else (``--out``, another folder, an installed package)
    the README is not the one those results belong to. Returns the README when written."""
    if report_path.resolve() != RESULTS / "report.md" or not README.exists():
        return None
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        return None
    new = splice(text, lines)
    if new != text:
        write_atomic(README, new)
    return README
