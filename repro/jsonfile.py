"""The one pair every JSON file of the tool is written and read with (asv's ``load_json`` /
``write_json``): atomic writes, and reads that check the file's ``schema`` and name the file
in every error.

Nothing here imports Optuna: the report and the tests read results without it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

from repro.errors import ReproError

T = TypeVar("T")


class FormatError(ReproError):
    """A file the tool should read is missing, unreadable, not JSON or of another schema."""


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write via a temp file in the same directory and rename: a crash leaves the old file.
    Text is written as UTF-8, bytes as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make results private to their writer
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8") if isinstance(text, str) else text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def dumps(data: Any) -> str:
    """The tool's JSON text: sorted keys, one space of indent, a final newline."""
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def write_json(path: Path, data: dict[str, Any], *, schema: int) -> None:
    """Write ``data`` with its ``schema`` number, atomically."""
    write_atomic(path, dumps({**data, "schema": schema}))


def load_json(path: Path, *, schema: int) -> dict[str, Any]:
    """Read a file written by ``write_json``; refuse a missing file, non-JSON, a non-object
    or a schema this code does not read (a newer one, typically), naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise FormatError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise FormatError(f"{path}: not a results object (top level is {type(data).__name__})")
    found = data.get("schema")
    if found != schema:
        newer = isinstance(found, int) and found > schema
        hint = "written by a newer version of this tool; update it" if newer else "move it away"
        raise FormatError(f"{path}: schema {found!r}, this code reads schema {schema} ({hint})")
    return data


def from_fields(cls: type[T], data: dict[str, Any], **override: Any) -> T:
    """``cls(**data)`` for a dataclass, keeping only the keys that are its fields (a file
    also stores derived keys such as summaries); ``override`` replaces converted fields."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{**{k: v for k, v in data.items() if k in known}, **override})
