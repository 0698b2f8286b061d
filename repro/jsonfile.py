"""The one pair every JSON file of the tool is written and read with (asv's ``load_json`` /
``write_json``): atomic writes, and reads that check the file's ``schema`` and name the file
in every error.

Nothing here imports Optuna: the report and the tests read results without it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import tempfile
import types
import typing
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
    """The tool's JSON text: sorted keys, one space of indent, a final newline. Strict
    (RFC 8259): a NaN or infinity raises ValueError instead of writing the ``NaN`` and
    ``Infinity`` tokens that JavaScript, jq and GitHub's API reject; tag them first
    (``encode_value`` / ``tag_nonfinite``)."""
    return json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n"


def encode_value(value: Any) -> list[Any]:
    """A grid value as a ``[type, payload]`` pair that survives JSON exactly: 1, 1.0, True,
    "1", -0.0, NaN and the infinities stay apart (a float is stored as its repr)."""
    if value is None:
        return ["none", None]
    if isinstance(value, bool):
        return ["bool", value]
    if isinstance(value, int):
        return ["int", value]
    if isinstance(value, float):
        return ["float", repr(value)]
    if isinstance(value, str):
        return ["str", value]
    raise FormatError(
        f"{value!r} is a {type(value).__name__}; GridSampler values are "
        "int, float, str, bool or None"
    )


def decode_value(item: object) -> Any:
    """The inverse of ``encode_value``; FormatError for anything else."""
    if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
        raise FormatError(f"value {item!r} is not a [type, payload] pair")
    tag, payload = item
    if tag == "none" and payload is None:
        return None
    if tag == "bool" and isinstance(payload, bool):
        return payload
    if tag == "int" and isinstance(payload, int) and not isinstance(payload, bool):
        return payload
    if tag == "str" and isinstance(payload, str):
        return payload
    if tag == "float" and isinstance(payload, str):
        try:
            number = float(payload)
        except ValueError:
            number = None
        if number is not None and repr(number) == payload:
            return number
    raise FormatError(
        f"value {item!r}: expected one of ['int', 1], ['float', '1.0'] (the float's repr), "
        "['str', 'text'], ['bool', true], ['none', null]"
    )


def tag_nonfinite(data: Any) -> Any:
    """``data`` with every NaN and infinity replaced by its ``encode_value`` pair, so that
    it can be written as strict JSON; everything JSON holds exactly is left as it is."""
    if isinstance(data, float) and not math.isfinite(data):
        return encode_value(data)
    if isinstance(data, dict):
        return {k: tag_nonfinite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [tag_nonfinite(v) for v in data]
    return data


def untag_nonfinite(data: Any) -> Any:
    """The inverse of ``tag_nonfinite``. Unambiguous where it is used (run records): a grid
    value is a scalar, so a ``["float", "nan"]`` list in a value's place is a tag."""
    if isinstance(data, list):
        if len(data) == 2 and data[0] == "float" and data[1] in _NONFINITE:
            return float(data[1])
        # Scalars are returned as they are without a call: a results file holds ~10^6 of them.
        return [untag_nonfinite(v) if isinstance(v, _CONTAINERS) else v for v in data]
    if isinstance(data, dict):
        return {k: untag_nonfinite(v) if isinstance(v, _CONTAINERS) else v for k, v in data.items()}
    return data


_CONTAINERS = (list, dict)


_NONFINITE = {repr(math.nan), repr(math.inf), repr(-math.inf)}


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


def shallow_fields(obj: Any) -> dict[str, Any]:
    """A dataclass instance's fields by name, values as they are, for a ``to_json`` that
    replaces each field holding records with their own ``to_json``: ``dataclasses.asdict``
    deep-copies every list and dict and converts those records only to be thrown away, which
    was most of the time of writing a results file."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def from_fields(cls: type[T], data: dict[str, Any], **override: Any) -> T:
    """``cls(**data)`` for a dataclass, keeping only the keys that are its fields (a file
    also stores derived keys such as summaries); ``override`` replaces converted fields."""
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{**{k: v for k, v in data.items() if k in known}, **override})


def check_types(cls: Any, data: Any) -> dict[str, Any]:
    """``data`` as it is, once it is an object whose keys that name fields of dataclass
    ``cls`` hold values of the fields' types (an int is a float too; lists and dicts are
    checked to their items); FormatError naming the first field that does not. A file that
    parses but holds, say, ``"missing": "3"`` is refused when read, before anything runs on
    it, instead of failing later with a TypeError deep in a summary."""
    if not isinstance(data, dict):
        raise FormatError(f"a {cls.__name__} is an object, not {type(data).__name__}")
    hints = _hints(cls)
    for name, value in data.items():
        hint = hints.get(name)
        if hint is not None and not _conforms(value, hint):
            raise FormatError(
                f"field {name!r} of a {cls.__name__} is {_shown(value)}, expected "
                f"{_shown_hint(hint)}"
            )
    return data


@functools.cache
def _hints(cls: Any) -> dict[str, Any]:
    fields = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in typing.get_type_hints(cls).items() if k in fields}


def _conforms(value: Any, hint: Any) -> bool:
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        # A list of records (e.g. runs) is checked by the record's own reader.
        if not isinstance(value, list):
            return False
        item = args[0] if args else Any
        if item is Any or dataclasses.is_dataclass(item):
            return True
        return all(_conforms(v, item) for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            return False
        item = args[1] if args else Any
        # JSON keys are strings already; the values are checked unless any value will do.
        return item is Any or all(_conforms(v, item) for v in value.values())
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def _shown_hint(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
