"""Full training state on disk: resume a run exactly where it stopped.

One file per save, ``checkpoint-<global step, 8 digits>.pt``, written atomically
(:func:`maedfer.io_utils.save_torch_atomic`), plus ``checkpoint-last.pt``, a hard link (a copy
where links fail) to the newest one, swapped in atomically. Older numbered files beyond
``keep_last`` are deleted. Contents (plain types only, so every load uses
``torch.load(weights_only=True)``; no pickle is ever executed)::

    {"format": "maedfer.training_state", "version": 1, "model": state_dict (DDP/compile unwrapped),
     "optimizer": ..., "scheduler": ... | None, "scaler": GradScaler state | None,
     "rng": [per-rank {"python", "numpy", "torch", "cuda"}], "world_size": int,
     "epoch": int, "step_in_epoch": int, "global_step": int, "config": {...}, "extra": {...},
     "torch_version": str, "saved_at": ISO time}

``config`` and ``extra`` must hold plain values (dict, list, tuple, str, int, float, bool, None,
tensors); paths and numpy values are converted, anything else is refused at save time (so a
checkpoint can never fail to load at resume time). Convention for the position: save the
position to resume FROM: after finishing epoch ``e`` pass ``epoch=e + 1, step_in_epoch=0``.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import random
import re
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from maedfer.io_utils import atomic_path, remove_stale_temporaries, save_torch_atomic, write_json_atomic
from maedfer.train.distributed import barrier, get_rank, get_world_size, is_dist, unwrap_model

logger = logging.getLogger(__name__)

FORMAT = "maedfer.training_state"
VERSION = 1
LAST_NAME = "checkpoint-last.pt"
FINISHED_NAME = "finished.json"  # written by mark_finished once the run's outputs are all written
_NUMBERED = re.compile(r"^checkpoint-(\d+)\.pt$")


class CheckpointError(ValueError):
    """A file that is not a usable maedfer training checkpoint."""


@dataclass
class TrainingState:
    """What :func:`load_training_state` returns besides restoring the objects it was given."""

    path: Path
    epoch: int
    step_in_epoch: int
    global_step: int
    world_size: int
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def checkpoint_name(global_step: int) -> str:
    """Return the file name of the checkpoint saved at ``global_step`` (``checkpoint-00000012.pt``)."""
    return f"checkpoint-{int(global_step):08d}.pt"


def _to_plain(obj: Any, where: str) -> Any:
    if obj is None or isinstance(obj, bool | torch.Tensor):
        return obj
    for base in (str, int, float):  # plain types: subclasses (IntEnum, TorchVersion) are not weights_only-safe
        if isinstance(obj, base):
            return base(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str | int):
                raise TypeError(f"{where}: key {k!r} is not a str or int")
            out[k] = _to_plain(v, f"{where}.{k}")
        return out
    if isinstance(obj, list | tuple):
        items = [_to_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    raise TypeError(
        f"{where}: {type(obj).__name__} cannot go into a weights_only checkpoint; store plain values "
        "(dict, list, str, int, float, bool, None, tensors) or its state_dict()"
    )


def collect_rng_state() -> dict[str, Any]:
    """Collect this process's RNG states: python, numpy (legacy global), torch CPU, and CUDA.

    CUDA: every device in a single process; only the current device under a process group (so no
    rank touches another rank's GPU). Nothing when CUDA was never initialised.
    """
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
        "cuda": {},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        devices = [torch.cuda.current_device()] if is_dist() else range(torch.cuda.device_count())
        state["cuda"] = {int(i): torch.cuda.get_rng_state(i) for i in devices}
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Set this process's RNG states from :func:`collect_rng_state`'s output (CUDA ones only where CUDA is)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    npst = state["numpy"]
    key = npst["key"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", key, npst["pos"], npst["has_gauss"], npst["gauss"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or {}
    if cuda:
        if not torch.cuda.is_available():
            logger.warning("checkpoint has CUDA RNG states but CUDA is unavailable: not restored")
            return
        for idx, rng in cuda.items():
            if int(idx) < torch.cuda.device_count():
                torch.cuda.set_rng_state(rng, int(idx))


def _gather_rng() -> list[dict[str, Any]]:
    local = collect_rng_state()
    if not is_dist():
        return [local]
    import torch.distributed as dist

    parts: list[Any] = [None] * get_world_size()
    dist.all_gather_object(parts, local)
    return parts


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Numbered checkpoints in ``directory``, oldest (lowest global step) first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NUMBERED.match(p.name))]
    return [p for _, p in sorted(found)]


def _link_or_copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def save_training_state(
    directory: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    step_in_epoch: int,
    global_step: int,
    scheduler: Any | None = None,
    scaler: Any | None = None,
    config: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    keep_last: int | None = 2,
) -> Path | None:
    """Write ``checkpoint-<global_step>.pt`` and point ``checkpoint-last.pt`` at it.

    A collective under DDP: call it on EVERY rank (it gathers each rank's RNG state); rank 0
    writes and returns the path, the other ranks return ``None`` after rank 0 has finished.
    ``keep_last``: how many numbered checkpoints to keep (``None``: all).
    """
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 or None, got {keep_last}")
    rng = _gather_rng()
    path: Path | None = None
    if get_rank() == 0:
        payload = {
            "format": FORMAT,
            "version": VERSION,
            "model": unwrap_model(model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng": rng,
            "world_size": get_world_size(),
            "epoch": int(epoch),
            "step_in_epoch": int(step_in_epoch),
            "global_step": int(global_step),
            "config": _to_plain(dict(config or {}), "config"),
            "extra": _to_plain(dict(extra or {}), "extra"),
            "torch_version": str(torch.__version__),
            "saved_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        directory = Path(directory)
        path = directory / checkpoint_name(global_step)
        save_torch_atomic(payload, path)
        _link_or_copy(path, directory / LAST_NAME)
        if keep_last is not None:
            for old in list_checkpoints(directory)[:-keep_last]:
                old.unlink(missing_ok=True)
        logger.info("saved training state %s (epoch %d, global step %d)", path, epoch, global_step)
    barrier()
    return path


def is_complete(path: str | Path) -> bool:
    """Tell whether ``path`` is a readable torch zip archive.

    Files are renamed into place whole, so this catches foreign or corrupt files.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("/data.pkl") for n in zf.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def find_resume_checkpoint(directory: str | Path) -> Path | None:
    """``checkpoint-last.pt`` if usable, else the newest usable numbered checkpoint, else ``None``."""
    directory = Path(directory)
    for candidate in [directory / LAST_NAME, *reversed(list_checkpoints(directory))]:
        if candidate.is_file():
            if is_complete(candidate):
                return candidate
            logger.warning("%s is not a complete checkpoint; skipped", candidate)
    return None


# Settings that do not change a run's trajectory: a killed run may be resumed with other values of these.
OPERATIONAL_KEYS = frozenset({"num_workers", "save_every_steps", "preview_every_epochs", "keep_last", "max_nonfinite",
                              "stop_after_steps", "compile", "data_path", "cache_mb"})


def mark_finished(directory: str | Path) -> None:
    """Record that the run owning ``directory`` wrote all its outputs (rank 0; call after the last output)."""
    if get_rank() == 0:
        write_json_atomic(Path(directory) / FINISHED_NAME,
                          {"finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")})


def _plain_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)  # tuples and lists compare equal, as saved


def resume_or_restart(directory: str | Path, config: dict[str, Any]) -> Path | None:
    """Return the checkpoint that this run continues from, or ``None`` to start afresh.

    Continues the newest checkpoint of an *unfinished* run with the same settings (a killed run,
    ``OPERATIONAL_KEYS`` aside; one killed during its final test continues with the test). A
    checkpoint of a *finished* run (:func:`mark_finished`), or one whose settings differ
    (Snakemake or DVC re-running a job after a setting or the code changed, or a user changing a
    flag), belongs to another run: the folder is moved to ``<directory>.previous`` (replacing an
    older one, so nothing of the last run is lost) and this run starts from the beginning.
    Temporary files of a checkpoint write killed mid-way are removed first (rank 0).
    A collective under DDP: call it on every rank.
    """
    directory = Path(directory)
    if get_rank() == 0:
        remove_stale_temporaries(directory)
    path = find_resume_checkpoint(directory)
    if path is None:
        return None
    payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    saved = dict(payload.get("config") or {})
    now = _to_plain(dict(config), "config")
    changed = sorted(k for k in set(saved) | set(now)
                     if k not in OPERATIONAL_KEYS and _plain_json(saved.get(k)) != _plain_json(now.get(k)))
    del payload
    finished = (directory / FINISHED_NAME).is_file()
    if not changed and not finished:
        return path
    barrier()  # every rank has read the checkpoint before rank 0 moves it
    previous = directory.with_name(directory.name + ".previous")
    if get_rank() == 0:
        shutil.rmtree(previous, ignore_errors=True)
        directory.rename(previous)
        why = f"its settings differ ({', '.join(changed)})" if changed else "that run had finished"
        logger.warning("%s is from another run (%s): moved to %s; starting afresh", path, why, previous)
    barrier()
    return None


def saved_extra(path: str | Path) -> dict[str, Any]:
    """The ``extra`` entries of checkpoint ``path`` (memory-mapped: the weights are not read); {} if unreadable."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - a foreign or broken file has no extra entries
        logger.debug("%s: no extra entries (%s)", path, e)
        return {}
    extra = payload.get("extra") if isinstance(payload, dict) else None
    return dict(extra) if isinstance(extra, dict) else {}


def read_training_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Return the raw payload (``weights_only=True``), checked for our format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # corrupt zip, foreign pickle
        raise CheckpointError(
            f"{path}: cannot be read as a training checkpoint ({type(e).__name__}: {e}); "
            "delete it or point --resume at another file"
        ) from e
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a maedfer training checkpoint (a model file? use it as --init instead)")
    if payload.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {payload['version']} is newer than this code; update maedfer"
        )
    return payload


def load_training_state(
    path: str | Path,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    scaler: Any | None = None,
    restore_rng: bool = True,
    strict: bool = True,
    map_location: str | torch.device = "cpu",
) -> TrainingState:
    """Restore model, optimizer, scheduler, scaler and this rank's RNG state from ``path``.

    Call on every rank. With a different world size than at save time, rank ``r`` takes the saved
    RNG state ``r mod saved_world_size`` (and the run is no longer bit-exact: a warning says so).
    """
    payload = read_training_state(path, map_location)
    unwrap_model(model).load_state_dict(payload["model"], strict=strict)
    if optimizer is not None:
        optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None:
        if payload.get("scheduler") is None:
            raise CheckpointError(f"{path}: has no scheduler state but a scheduler was given")
        scheduler.load_state_dict(payload["scheduler"])
    if scaler is not None and payload.get("scaler"):
        scaler.load_state_dict(payload["scaler"])
    saved_world = int(payload.get("world_size", 1))
    if restore_rng:
        rngs = payload["rng"]
        rank, world = get_rank(), get_world_size()
        if world != saved_world or len(rngs) != saved_world:
            logger.warning(
                "%s was saved with %d processes, resuming with %d: RNG streams differ from an uninterrupted run",
                path,
                saved_world,
                world,
            )
        restore_rng_state(rngs[rank % len(rngs)])
    logger.info(
        "resumed from %s (epoch %d, step in epoch %d, global step %d)",
        path,
        payload["epoch"],
        payload["step_in_epoch"],
        payload["global_step"],
    )
    return TrainingState(
        path=Path(path),
        epoch=int(payload["epoch"]),
        step_in_epoch=int(payload["step_in_epoch"]),
        global_step=int(payload["global_step"]),
        world_size=saved_world,
        config=payload.get("config") or {},
        extra=payload.get("extra") or {},
    )
