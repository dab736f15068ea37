"""torch.distributed set-up from torchrun's environment, plus the few collectives the loops need.

Launched by ``torchrun`` (``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set) :func:`init_distributed`
joins the process group (NCCL on CUDA, gloo on CPU); launched as a plain ``python`` process it
runs single-process and every helper here degrades to the obvious local answer.
"""

from __future__ import annotations

import datetime
import logging
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger(__name__)

_ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class DistributedSetupError(RuntimeError):
    """torchrun's environment is incomplete or inconsistent."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process runs: its rank among ``world_size`` processes, local rank and device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    is_main: bool

    @property
    def distributed(self) -> bool:
        """Tell whether more than one process trains (DDP)."""
        return self.world_size > 1


def is_dist() -> bool:
    """Tell whether this process is inside an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    """Return this process's rank (0 without a process group)."""
    return dist.get_rank() if is_dist() else 0


def get_world_size() -> int:
    """Return the number of processes (1 without a process group)."""
    return dist.get_world_size() if is_dist() else 1


def is_main_process() -> bool:
    """Tell whether this is rank 0, the process that writes the outputs."""
    return get_rank() == 0


def _launched_by_torchrun() -> bool:
    present = [v for v in _ENV_VARS if v in os.environ]
    if present and len(present) != len(_ENV_VARS):
        missing = sorted(set(_ENV_VARS) - set(present))
        raise DistributedSetupError(
            f"environment has {present} but not {missing}; launch with 'torchrun' or unset them for one process"
        )
    return bool(present)


def init_distributed(backend: str | None = None, timeout_s: float = 1800.0, use_cuda: bool | None = None) -> DistInfo:
    """Join the process group torchrun describes, or describe a single process.

    ``backend`` defaults to NCCL when CUDA is used and gloo otherwise; ``use_cuda`` defaults to
    ``torch.cuda.is_available()``. Each rank uses ``cuda:LOCAL_RANK`` (made the current device).
    Calling it again after a successful initialisation returns the same answer.
    """
    cuda = torch.cuda.is_available() if use_cuda is None else use_cuda
    if not _launched_by_torchrun():
        device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
        return DistInfo(rank=0, world_size=1, local_rank=0, device=device, is_main=True)

    rank, world, local = (int(os.environ[v]) for v in _ENV_VARS)
    if cuda:
        if local >= torch.cuda.device_count():
            raise DistributedSetupError(
                f"LOCAL_RANK={local} but only {torch.cuda.device_count()} CUDA devices are visible; "
                "lower --nproc_per_node or fix CUDA_VISIBLE_DEVICES"
            )
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if not is_dist():
        backend = backend or ("nccl" if cuda else "gloo")
        kwargs: dict = {"device_id": device} if backend == "nccl" else {}
        timeout = datetime.timedelta(seconds=timeout_s)
        if (store := _attempt_store(timeout)) is not None:
            kwargs.update(store=store, rank=rank, world_size=world)
        dist.init_process_group(backend=backend, timeout=timeout, **kwargs)
        logger.info("joined process group: rank %d/%d, backend %s, device %s", rank, world, backend, device)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=device, is_main=rank == 0)


def _attempt_store(timeout: datetime.timedelta) -> dist.Store | None:
    """The agent's store with a prefix per restart of torchrun's workers (``--max-restarts``), else None.

    torchrun's agent keeps one store across restarts of its workers; without a prefix, restarted
    workers can read the addresses the killed workers published and fail to connect (gloo:
    ``connectFullMesh ... Connection refused``). None: ``env://`` as usual (no agent store).
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]),
                          int(os.environ["WORLD_SIZE"]), is_master=False, timeout=timeout)
    return dist.PrefixStore(f"maedfer/attempt_{attempt}", store)


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the module inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if not is_dist():
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def _collective_device() -> torch.device:
    if is_dist() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_mean(value: torch.Tensor | float) -> torch.Tensor | float:
    """Mean of ``value`` over ranks; a float gives a float, a tensor a new tensor (input untouched)."""
    if isinstance(value, torch.Tensor):
        if not is_dist():
            return value.detach().clone()
        t = value.detach().to(_collective_device(), dtype=torch.float64 if not value.is_floating_point() else None)
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return (t / dist.get_world_size()).to(value.device)
    if not is_dist():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / dist.get_world_size()


def cleanup() -> None:
    """Leave the process group (no-op when there is none)."""
    if is_dist():
        dist.destroy_process_group()


def seed_everything(seed: int, rank: int = 0, deterministic: bool = False) -> int:
    """Seed python, numpy and torch (CPU and every CUDA device) with ``seed + rank``; return that seed.

    ``deterministic`` also turns off cuDNN autotuning and asks cuDNN for deterministic kernels
    (slower; the training loops leave it off).
    """
    effective = int(seed) + int(rank)
    random.seed(effective)
    np.random.seed(effective % 2**32)
    torch.manual_seed(effective)
    if deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return effective


def any_rank(flag: bool) -> bool:
    """Tell whether ``flag`` is true on at least one rank (a collective under a process group)."""
    if not is_dist():
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj: object) -> list:
    """Every rank's ``obj`` (picklable), in rank order (a collective under a process group)."""
    if not is_dist():
        return [obj]
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, obj)
    return parts
