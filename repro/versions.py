"""Release strings in numeric order; a leaf module that anything may import."""

from __future__ import annotations

import functools
import re


@functools.cache
def version_key(version: str) -> tuple[int, ...]:
    """Order release strings numerically by their leading digits ("5.0.0rc1" -> (5, 0, 0))."""
    return tuple(int(m.group()) if (m := re.match(r"\d+", p)) else 0 for p in version.split("."))
