"""When and how a model is compiled: ``torch.compile``, with CUDA graphs where they are safe.

The ``compile`` setting of a recipe is ``"auto"`` (the default), ``true`` or ``false``:

* ``false``: eager;
* ``"auto"``: compiled on a CUDA device, eager on CPU (compiling a tiny CPU model costs more than it saves);
* ``true``: compiled on any device.

A compiled model on CUDA uses CUDA graphs (``mode="reduce-overhead"``: one graph replay per step instead of
one launch per kernel, which matters to the LGI-Former's many small kernels) when that is safe: a single
process (under DDP, gradient-bucket hooks run between kernels, so the default mode is used) and fixed
shapes. Training batches have fixed shapes (the loaders drop the last incomplete batch). Evaluation batches
do not (the last one is smaller): :class:`StaticBatch` pads them to the recorded size and drops the padded
rows, so no new graph is recorded per batch size.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import torch
from torch import nn

log = logging.getLogger(__name__)

COMPILE_CHOICES: tuple[object, ...] = ("auto", True, False)


def compile_mode(setting: bool | str, device: torch.device, distributed: bool = False) -> str | None:
    """The ``torch.compile`` mode for ``setting`` on ``device`` (None: stay eager).

    Returns ``"reduce-overhead"`` (CUDA graphs) on one CUDA device, ``"default"`` under DDP or on CPU
    when compiling is asked for, None when it is not. Compiling on CPU needs the CPU's native kernels
    (``MAEDFER_CPU_ISA=native``, see :mod:`maedfer.runtime`): a ValueError says so otherwise.
    """
    if setting not in COMPILE_CHOICES:
        raise ValueError(f"compile must be 'auto', true or false, got {setting!r}")
    if setting is False or (setting == "auto" and device.type != "cuda"):
        return None
    if device.type == "cpu" and os.environ.get("ATEN_CPU_CAPABILITY", "").lower() not in ("", "native"):
        raise ValueError(
            f"compile: true on CPU does not work with portable CPU numerics (ATEN_CPU_CAPABILITY="
            f"{os.environ['ATEN_CPU_CAPABILITY']}: torch's CPU compiler then gives NaN); set compile: false, or "
            "MAEDFER_CPU_ISA=native (and unset ATEN_CPU_CAPABILITY) to compile on CPU"
        )
    if device.type == "cuda" and not distributed:
        return "reduce-overhead"
    return "default"


def compile_model(model: nn.Module, mode: str | None) -> Callable[..., torch.Tensor]:
    """``model`` compiled in ``mode`` (see :func:`compile_mode`), or ``model`` itself when ``mode`` is None."""
    if mode is None:
        return model
    log.info("compiling the model (torch.compile mode=%s)", mode)
    return torch.compile(model, mode=mode)


class StaticBatch:
    """Calls ``fn`` on batches padded to one size, so that a CUDA-graph-compiled ``fn`` records one graph.

    The first call fixes the size (its batch size). A smaller batch is padded by repeating its last row
    and the outputs of the padded rows are dropped; a larger one is split into chunks of the size. Per-row
    results are those of ``fn`` on the rows alone up to kernel-level rounding (rows do not interact in an
    evaluation forward pass).
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], size: int | None = None) -> None:
        self.fn = fn
        self.size = size

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``fn(x)`` for a batch ``x`` (N, ...) of any size N >= 1 -> (N, ...)."""
        n = x.shape[0]
        if self.size is None:
            self.size = n
        if n > self.size:
            return torch.cat([self(chunk) for chunk in x.split(self.size)])
        if n < self.size:
            x = torch.cat([x, x[-1:].expand(self.size - n, *x.shape[1:])])  # (size, ...)
        return self.fn(x)[:n].clone()  # a copy: a CUDA graph overwrites its outputs at the next replay
