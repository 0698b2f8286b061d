"""The one user-facing error class: every command's ``main`` catches it, prints one line and
exits 2 (see ``repro.cmdline.dispatch``)."""

from __future__ import annotations


class ReproError(Exception):
    """Bad input or an unusable environment; the message says what to change."""
