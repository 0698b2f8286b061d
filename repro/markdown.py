"""The few Markdown shapes every rendered section uses, in one place so that they stay alike.

GitHub-flavoured Markdown as ``markdown-it-py``'s commonmark + table renders it (the report test
parses the report that way).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A table's lines: header, separator, one line per row (cells are Markdown already)."""
    return [
        _row(headers),
        "|" + "---|" * len(headers),
        *(_row(cells) for cells in rows),
    ]


def _row(cells: Sequence[str]) -> str:
    """``| a | b |``; an empty cell is ``| |``, one space wide, as in the timeline's row for a
    release that was not measured."""
    return "|" + "".join(f" {cell} |" if cell else " |" for cell in cells)


def details(summary: str, body: Sequence[str]) -> list[str]:
    """A folded block; GitHub renders the Markdown inside it only after a blank line, and
    ``body`` should end with one so that the closing tag is not read as part of a table."""
    return [f"<details><summary>{summary}</summary>", "", *body, "</details>", ""]


def bold(text: str) -> str:
    return f"**{text}**"


def code(text: str) -> str:
    """An inline code span that survives any text, also inside a table cell: the fence is longer
    than any backtick run in ``text``, and ``|`` is escaped."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text.replace('|', chr(92) + '|')}{pad}{fence}"
