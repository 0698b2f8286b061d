"""What every command line of the tool shares (asv's ``common_args`` pattern): a parser whose
errors are one line and exit 2, the argument types, and ``dispatch``, which runs a subcommand
and turns a ``ReproError`` into one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Mapping
from typing import NoReturn

from repro.errors import ReproError

EXIT_BAD_INPUT = 2


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line naming ``--help``."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def positive_seconds(text: str) -> float:
    """A finite number of seconds above 0 (``0``, ``-5``, ``nan`` and ``inf`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a finite number of seconds above 0")
    return value


Handler = Callable[[argparse.Namespace], int]


def dispatch(prog: str, handlers: Mapping[str, Handler], args: argparse.Namespace) -> int:
    """Run ``handlers[args.command]``; a ReproError becomes ``prog: error: ...`` and exit 2."""
    try:
        return handlers[args.command](args)
    except ReproError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def prog_name(module_form: str) -> str:
    """How the user started the tool: the console script's name (``optuna-grid-repro``), or
    ``module_form`` under ``python -m``."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return module_form if name in ("", "__main__.py", "-c", "-m") else name
