"""What every stage command shares: its parser, the shared flags, settings flags, and one error path.

Every stage is ``python -m pipeline.<stage>`` from the repository root and takes ``--params FILE``,
``--out PATH``, ``-v/--verbose``, ``--mlflow-experiment NAME`` and ``--no-tracking``. Settings flags
are added with ``default=argparse.SUPPRESS``: a flag is in the namespace only when it was typed, so
:func:`explicit` gives what the user set (even a value equal to the default), and
:func:`maedfer.settings.resolve.resolve_config` applies explicit flag > params file > default.
A user error (bad flag, bad params file, missing input) is one line ``<stage>: error: ...`` on
stderr and exit status 2; ``-v`` shows the traceback instead. A stage whose parser sets
``lock_out`` (:func:`lock_output`) holds ``--out``'s lock while it runs (:mod:`maedfer.locks`): a
second run into the folder, or an unwritable folder, is such a one-line error before any work.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maedfer.io_utils import WriteError
from maedfer.locks import OutputLockedError

if TYPE_CHECKING:
    from maedfer.workflow.profile import Profile

SHARED_DESTS = frozenset({"params", "out", "mlflow_experiment", "no_tracking", "verbose"})  # the shared flags
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, WriteError, OutputLockedError)


class StageParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2 (no usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print ``<prog>: error: <message> (see --help)`` and exit with status 2."""
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        sys.exit(2)


def stage_parser(name: str, doc: str, epilog: bool = False) -> StageParser:
    """A stage's parser: ``prog`` is the stage name, the description the first line of ``doc``."""
    lines = doc.strip().splitlines()
    return StageParser(prog=name, description=lines[0], epilog="\n".join(lines[1:]) if epilog else None,
                       formatter_class=argparse.RawDescriptionHelpFormatter)


def add_shared_flags(p: argparse.ArgumentParser, out_help: str, *, out_required: bool = True,
                     out_aliases: tuple[str, ...] = (), out_type: Callable[[str], Any] = str,
                     params_help: str = "params file (params.yaml, params/demo.yaml)",
                     mlflow_help: str = "MLflow experiment") -> None:
    """The flags every stage takes: --params, --out, --mlflow-experiment, --no-tracking, -v."""
    p.add_argument("--params", default=None, metavar="FILE", help=params_help)
    p.add_argument("--out", *out_aliases, dest="out", required=out_required, type=out_type, help=out_help)
    p.add_argument("--mlflow-experiment", default=None, metavar="NAME", help=mlflow_help)
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output; tracebacks on errors")


def add_setting_flags(p: argparse.ArgumentParser, cls: type, names: Iterable[str], kind: Callable[[str], Any],
                      helps: dict[str, str] | None = None) -> None:
    """``--a-b`` flags for the fields ``names`` of settings dataclass ``cls``; unset ones stay out of the args."""
    default = cls()
    for name in names:
        text = (helps or {}).get(name, "")
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=argparse.SUPPRESS,
                       help=f"{text} ({getattr(default, name)})".strip())


def explicit(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` given on the command line (setting flags use ``default=SUPPRESS``)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


def load_params(args: argparse.Namespace) -> Profile | None:
    """The validated params file of ``--params`` (None without it); ParamsError names the file and key."""
    if not args.params:
        return None
    from maedfer.workflow.profile import load_profile

    return load_profile(args.params)


def lock_output(p: argparse.ArgumentParser, what: str) -> None:
    """Make the stage hold ``--out``'s lock while it runs (``what``: "ingest", "fine-tuning", ... for the error)."""
    p.set_defaults(lock_out=what)


def _output_guard(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """The lock of ``args.out`` for a stage that asked for it (:func:`lock_output`), else nothing.

    Holding it, the stage writes a probe file (an unwritable folder is found now, not after an
    epoch) and removes temporaries of atomic writes killed mid-way in ``--out`` and ``--out/checkpoints``.
    """
    what = getattr(args, "lock_out", None)
    if not what or getattr(args, "out", None) is None:
        return contextlib.nullcontext()
    from maedfer.locks import hold_output, takes_lock

    if not takes_lock():  # a torchrun rank other than 0: rank 0 holds the lock for the group
        return contextlib.nullcontext()
    stack = contextlib.ExitStack()
    try:
        folder = stack.enter_context(hold_output(args.out, what))
        _probe_writable(folder)
        _remove_stale_temporaries(folder)
    except BaseException:
        stack.close()
        raise
    return stack


def _probe_writable(folder: Path) -> None:
    import tempfile

    from maedfer.io_utils import write_error

    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise write_error(folder, exc) from exc


def _remove_stale_temporaries(folder: Path) -> None:
    from maedfer.io_utils import remove_stale_temporaries

    for where in (folder, folder / "checkpoints"):
        remove_stale_temporaries(where)


def tracking_enabled(args: argparse.Namespace, profile: Profile | None) -> bool:
    """MLflow tracking unless ``--no-tracking``, or the params file's ``mlflow.tracking`` is false."""
    return not args.no_tracking and (profile is None or profile.params.mlflow.tracking)


def run_stage(name: str | Callable[[argparse.Namespace], str], body: Callable[[argparse.Namespace], int | None],
              args: argparse.Namespace, errors: tuple[type[BaseException], ...] = ()) -> int:
    """``body(args)``; a user error becomes one line ``<name>: error: ...`` and exit status 2.

    ``name`` may be a function of ``args`` (e.g. ``figures fig4``); ``errors`` adds stage-specific user
    errors to :data:`USER_ERRORS`. With ``-v`` the error propagates with its traceback.
    """
    try:
        with _output_guard(args):
            return int(body(args) or 0)
    except (*USER_ERRORS, *errors) as exc:
        if args.verbose:
            raise
        label = name(args) if callable(name) else name
        sys.stderr.write(f"{label}: error: {_one_line(exc)}\n")
        return 2


def _one_line(exc: BaseException) -> str:
    """The message of ``exc``; for one re-raised from a DataLoader worker, the worker's own message."""
    text = str(exc)
    if text.startswith("Caught ") and "Original Traceback" in text:  # torch's ExceptionWrapper.reraise
        last = text.rstrip().splitlines()[-1]
        prefix = f"{type(exc).__module__}.{type(exc).__qualname__}: "
        return last[len(prefix):] if last.startswith(prefix) else last
    return text


def stage_main(name: str | Callable[[argparse.Namespace], str], parser: argparse.ArgumentParser,
               body: Callable[[argparse.Namespace], int | None], argv: list[str] | None = None,
               errors: tuple[type[BaseException], ...] = ()) -> int:
    """A stage's ``main``: parse ``argv``, set up logging (-v), run ``body`` through :func:`run_stage`."""
    from maedfer.logging_utils import setup_logging

    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    return run_stage(name, body, args, errors)
