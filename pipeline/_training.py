"""What the two training stages (pretrain, finetune) share beyond :mod:`pipeline._stage`."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from maedfer.settings.resolve import resolve_config
from maedfer.settings.training import PRECISIONS
from maedfer.workflow.profile import Profile
from pipeline._stage import add_shared_flags, explicit, lock_output, stage_parser

T = TypeVar("T")


def training_parser(name: str, doc: str, default_arch: str, arch_kwargs_example: str,
                    **shared: Any) -> argparse.ArgumentParser:
    """The start of a training stage's parser: shared flags, ``--arch``, ``--arch-kwargs`` and ``--no-resume``.

    The stage holds ``--out``'s lock while it runs (:func:`pipeline._stage.lock_output`).

    ``shared`` goes to :func:`pipeline._stage.add_shared_flags` (``out_help``, ``params_help``, ...).
    """
    p = stage_parser(name, doc)
    add_shared_flags(p, **shared)
    p.add_argument("--arch", default=argparse.SUPPRESS, help=f"model factory ({default_arch})")
    p.add_argument("--arch-kwargs", default=argparse.SUPPRESS,
                   help=f"JSON constructor arguments, e.g. {arch_kwargs_example}")
    p.add_argument("--no-resume", action="store_true", help="start afresh instead of continuing a killed run")
    lock_output(p, name)
    return p


def add_precision_flag(p: argparse.ArgumentParser) -> None:
    """``--precision bf16|fp16|fp32`` (unset: the params file, else bf16 on CUDA and fp32 on CPU)."""
    p.add_argument("--precision", choices=PRECISIONS, default=argparse.SUPPRESS,
                   help="autocast precision; fp16 adds a gradient scaler (default: bf16 on CUDA, fp32 on CPU)")


def training_config(cls: type[T], args: argparse.Namespace, profile: Profile | None, entry: str | None, flag: str,
                    from_profile: Callable[[Profile, dict[str, Any]], T]) -> T:
    """Explicit flags > the params file's named ``entry`` (``from_profile``) > the defaults of ``cls``."""
    flags = settings_from_json(explicit(args, cls))
    if flags.get("auto_augment") in ("none", "None", ""):
        flags["auto_augment"] = None
    if (profile is None) != (entry is None):
        raise ValueError(f"--params and {flag} go together")
    cfg = resolve_config(cls, None, flags) if profile is None else from_profile(profile, flags)
    check_settings(cfg, flags, "defaults" if profile is None else f"{profile.path}: {flag} {entry}")
    return cfg


def check_settings(cfg: Any, flags: dict[str, Any], source: str) -> None:
    """Recipe values in range and the model buildable (on the meta device), before any work.

    A problem is a ValueError naming the flag that set the value, else ``source`` (the params file and entry).
    """
    from dataclasses import asdict

    from maedfer.settings.training import classifier_build_kwargs
    from maedfer.settings.validate import check_model, value_problems

    def key_of(key: str) -> str:
        return f"--{key.replace('_', '-')}" if key in flags else f"{source}: {key}"

    settings = asdict(cfg)
    if problems := value_problems(settings, key_of):
        raise ValueError(problems[0])
    where = next((f"--{k.replace('_', '-')}" for k in ("arch_kwargs", "arch") if k in flags), source)
    check_model(cfg.arch, dict(cfg.arch_kwargs), where, **classifier_build_kwargs(settings))


def settings_from_json(flags: dict[str, Any]) -> dict[str, Any]:
    """Explicit setting flags with ``--arch-kwargs`` decoded from JSON (a ValueError names the flag)."""
    out = dict(flags)
    if "arch_kwargs" in out:
        try:
            out["arch_kwargs"] = json.loads(out["arch_kwargs"])
        except json.JSONDecodeError as exc:
            raise ValueError(f"--arch-kwargs: not valid JSON ({exc}); e.g. '{{\"pool\": \"local\"}}'") from None
    return out


def require_index(index: str | Path) -> Path:
    """``index`` as a Path; FileNotFoundError with how to build it when it is missing."""
    path = Path(index)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: index not found; build it with python -m pipeline.ingest")
    return path


@contextlib.contextmanager
def process_group_left() -> Iterator[None]:
    """Leave torchrun's process group when the training ends or is preempted (exit status 143).

    A gloo or NCCL group still alive at interpreter exit can abort the process ("terminate called
    without an active exception", SIGABRT), which torchrun and the scheduler would read as a failure.
    After other errors the group is left to the process's end (a peer may be gone: leaving could hang).
    """
    from maedfer.train.distributed import cleanup

    try:
        yield
    except SystemExit:
        cleanup()
        raise
    cleanup()
