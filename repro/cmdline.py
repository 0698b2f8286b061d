"""What every command line of the tool shares (asv's ``common_args`` pattern): a parser whose
errors are one line and exit 2, the argument types, and ``dispatch``, which runs a subcommand
and turns a ``ReproError`` into one line on stderr and exit status 2. Every error line of a
command starts with the same ``PROG: error:`` prefix, its parser's ``prog``."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from repro.errors import ReproError

EXIT_BAD_INPUT = 2
# 128 + SIGPIPE, what a shell reports for a tool that a closed pipe stopped.
EXIT_BROKEN_PIPE = 141


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line naming ``--help``, with the prefix
    of every error of the program (``error_prog``: the top parser's ``prog``, which its
    subcommands' parsers inherit), as ``dispatch`` gives the commands' own errors."""

    def __init__(self, *args: Any, error_prog: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.error_prog = error_prog or self.prog

    def add_subparsers(self, **kwargs: Any) -> Any:
        kwargs.setdefault("parser_class", Parser)
        action = super().add_subparsers(**kwargs)
        add_parser = action.add_parser

        def add_subcommand(name: str, **options: Any) -> Parser:
            return add_parser(name, error_prog=self.error_prog, **options)  # type: ignore[no-any-return]

        action.add_parser = add_subcommand  # type: ignore[method-assign]
        return action

    def error(self, message: str) -> NoReturn:
        self.exit(
            EXIT_BAD_INPUT, error_line(self.error_prog, f"{message} (see {self.prog} --help)\n")
        )


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


def error_line(prog: str, message: str) -> str:
    """The one shape of an error line, for the parser's usage errors and the commands' own."""
    return f"{prog}: error: {message}"


def dispatch(prog: str, handlers: Mapping[str, Handler], args: argparse.Namespace) -> int:
    """Run ``handlers[args.command]``; a ReproError becomes ``prog: error: ...`` and exit 2.
    Output piped into a reader that stops early (``| head``) ends the command quietly."""
    try:
        status = handlers[args.command](args)
        # Flushed here so that a closed pipe shows up inside the try, not at interpreter exit.
        sys.stdout.flush()
        return status
    except ReproError as exc:
        print(error_line(prog, str(exc)), file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        # The reader has gone: send what Python still holds for stdout nowhere, as the
        # Python documentation advises, and exit as a piped Unix tool does on SIGPIPE.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def prog_name(module_form: str) -> str:
    """How the user started the tool: the console script's name (``optuna-grid-repro``), or
    ``module_form`` under ``python -m``."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return module_form if name in ("", "__main__.py", "-c", "-m") else name
