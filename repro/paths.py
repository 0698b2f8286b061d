"""Folder paths of the machine that ran a measurement, written relative to a named root.

Tracebacks and headers recorded in results files would otherwise carry the paths of one
machine (a home directory, a worktree, a nox environment), and a user who attaches
``results.zip`` upstream would publish them. ``relativize`` rewrites every absolute path it
recognises to a named root: ``<site-packages>/optuna/...``, ``<stdlib>/json/...``,
``<checkout>/repro/...``, ``<tmp>/...``, ``<home>/...``. It is applied where a traceback or a
header is recorded, and ``python -m repro.paths FILE...`` applies it to results files that
were written before (every string in the JSON, the file rewritten atomically, strict JSON).
"""

from __future__ import annotations

import json
import re
import sys
import sysconfig
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from repro.errors import ReproError
from repro.jsonfile import dumps, write_atomic

# The checkout this package runs from (an installed package: its site-packages folder).
CHECKOUT = Path(__file__).resolve().parents[1]

# A path character: anything but whitespace, quotes and the brackets around a path in a text.
_P = r"[^\s\"'<>()\[\]{},]"
# Where an absolute path starts: not inside a word, a relative path or an earlier root's name.
_START = r"(?<![\w.~>-])"
# Ordered: the most specific root first. Each pattern matches an absolute path's prefix.
_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"{_START}/{_P}*?/(?:site|dist)-packages/"), "<site-packages>/"),
    (re.compile(rf"{_START}/{_P}*?/lib/python3\.\d+/"), "<stdlib>/"),
    (re.compile(rf"{_START}(?:/tmp|/var/tmp|/dev/shm)(?=/)"), "<tmp>"),
    (re.compile(rf"{_START}/{_P}*?/(?=(?:repro|tests|patches|results|\.nox)/)"), "<checkout>/"),
    (re.compile(rf"{_START}(?:/root|/home/{_P}+?|/Users/{_P}+?)(?=/)"), "<home>"),
    (re.compile(rf"{_START}/work/[^\s\"'<>()\[\]{{}},/]+(?=/)"), "<work>"),
)


def _live_roots() -> list[tuple[str, str]]:
    """This machine's own roots, by their real names (they need not look like the rules)."""
    roots = [
        (sysconfig.get_paths()["purelib"], "<site-packages>"),
        (sysconfig.get_paths()["stdlib"], "<stdlib>"),
        (str(CHECKOUT), "<checkout>"),
        (tempfile.gettempdir(), "<tmp>"),
    ]
    found = [(p.rstrip("/"), name) for p, name in roots if p.rstrip("/")]
    return sorted(found, key=lambda r: -len(r[0]))


# Web addresses are left as they are: their paths are not this machine's.
_URL = re.compile(r"(https?://[^\s\"'<>()\[\]]+)")


def relativize(text: str) -> str:
    """``text`` with every machine path it holds written from a named root."""
    parts = _URL.split(text)
    # Odd parts are the addresses the split kept.
    return "".join(p if i % 2 else _relativize(p) for i, p in enumerate(parts))


def _relativize(text: str) -> str:
    for path, name in _live_roots():
        text = text.replace(path + "/", name + "/")
        if text == path:
            return name
    for pattern, name in _RULES:
        text = pattern.sub(name, text)
    return text


def relativize_json(value: Any) -> Any:
    """Every string in a JSON value (keys too) relativized."""
    if isinstance(value, str):
        return relativize(value)
    if isinstance(value, list):
        return [relativize_json(v) for v in value]
    if isinstance(value, dict):
        return {relativize(k): relativize_json(v) for k, v in value.items()}
    return value


def rewrite(path: Path) -> bool:
    """Rewrite one JSON file's paths in place, in the layout every file of the tool has
    (``jsonfile.dumps``). Returns whether anything changed."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ReproError(f"{path}: not JSON ({exc})") from None
    new = relativize_json(data)
    if new == data:
        return False
    write_atomic(path, dumps(new))
    return True


def main(argv: Sequence[str] | None = None) -> int:
    from repro.cmdline import Parser, dispatch

    parser = Parser(prog="python -m repro.paths", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    rw = sub.add_parser("rewrite", help="write the paths in JSON files from named roots")
    rw.add_argument("files", nargs="+", type=Path)

    def cmd_rewrite(args: Any) -> int:
        for path in args.files:
            if rewrite(path):
                print(f"rewrote {path}", file=sys.stderr)
        return 0

    args = parser.parse_args(argv)
    return dispatch(parser.prog, {"rewrite": cmd_rewrite}, args)


if __name__ == "__main__":
    sys.exit(main())
