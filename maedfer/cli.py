"""The ``maedfer`` command: one sub-command per task, each defined in its own module.

The modules live in :mod:`maedfer.commands` and are imported lazily so that ``maedfer --help``
stays fast (torch and mlflow imports cost seconds). Each module exposes ``add_parser(subparsers)``
which registers its parser and sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from maedfer import __version__
from maedfer.commands import COMMANDS, module_name
from maedfer.logging_utils import setup_logging

# sub-command name -> (module providing add_parser(), one-line help); the modules live in maedfer/commands/
SUBCOMMANDS: dict[str, tuple[str, str]] = {name: (module_name(name), text) for name, text in COMMANDS.items()}

log = logging.getLogger("maedfer")


class UserError(Exception):
    """An error caused by the user's input; reported as one line, no traceback."""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``maedfer`` parser; only sub-command ``only`` (if any) has its module imported and its options."""
    parser = argparse.ArgumentParser(prog="maedfer", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"maedfer {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        if name == only:
            importlib.import_module(module).add_parser(sub)
        else:  # listed for --help without importing its (heavy) module
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``maedfer``; a user error is one line ``maedfer <command>: error: ...`` and exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (UserError, FileNotFoundError, ValueError) as exc:
        if args.verbose:
            raise
        sys.stderr.write(f"maedfer {args.command}: error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
