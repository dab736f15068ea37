"""The training engine's policies, one definition each: precision, non-finite updates, the warm-up check.

Precision (``precision`` setting): ``None`` is the default policy, bf16 autocast on CUDA and plain
fp32 everywhere else (the CPU demo and the tests); ``"bf16"``, ``"fp16"`` and ``"fp32"`` force one
on any device. fp16 is float16 autocast with a dynamic gradient scaler (:func:`grad_scaler`), the
authors' set-up. Non-finite losses: the update is skipped (the gradients are dropped), counted and
logged; a step the fp16 scaler skips because the scaled gradients overflowed is counted apart
(``overflows``: a few are normal while the scale settles). ``max_in_a_row`` consecutive updates
with a non-finite loss, or ``max_in_a_row`` consecutive scaler-skipped ones, raise
:class:`NonFiniteLossError` (the run resumes from its last checkpoint after the lr or gradient
clipping is changed).
Warm-up: a warm-up longer than the run is a user error, refused before any heavy work.
"""

from __future__ import annotations

import logging

import torch

from maedfer.settings.training import PRECISIONS

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Too many consecutive updates with a non-finite loss."""


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """The precision a run on ``device`` uses: ``precision``, or bf16 on CUDA and fp32 elsewhere when None."""
    if precision is None:
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)} (or null for the default)")
    return precision


def autocast(device: torch.device, precision: str | None = None) -> torch.autocast:
    """Return the autocast context of a forward pass on ``device`` (see :func:`resolve_precision`)."""
    resolved = resolve_precision(precision, device)
    if resolved == "fp32":
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=_DTYPES[resolved])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A dynamic loss scaler (torch's defaults, as the authors') for fp16; None for bf16 and fp32."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def check_warmup(warmup_epochs: int, epochs: int) -> None:
    """Refuse a warm-up longer than the run (a one-line ValueError naming the flag to change)."""
    if warmup_epochs > epochs:
        raise ValueError(f"warmup_epochs ({warmup_epochs}) is more than epochs ({epochs}); lower --warmup-epochs")


class NonFiniteGuard:
    """Decides whether an update may be applied, counting the skipped ones.

    ``skipped`` counts every update of this process's run with a non-finite loss and ``in_a_row``
    the current streak of them; ``overflows`` counts the fp16 steps the gradient scaler skipped
    (finite loss, overflowing gradients) and ``overflows_in_a_row`` those since the last applied
    update (:meth:`applied`). A streak of ``max_in_a_row`` of either raises :class:`NonFiniteLossError`.
    """

    def __init__(self, max_in_a_row: int = 20) -> None:
        """Start with no skipped update; ``max_in_a_row`` must be at least 1."""
        if max_in_a_row < 1:
            raise ValueError(f"max_nonfinite must be >= 1, got {max_in_a_row}")
        self.max_in_a_row = max_in_a_row
        self.skipped = 0
        self.overflows = 0
        self.overflows_in_a_row = 0
        self.in_a_row = 0

    def check(self, loss: torch.Tensor, step: int) -> bool:
        """Return True when ``loss`` (of update ``step``) is finite; else count, warn, and maybe raise."""
        if torch.isfinite(loss):
            self.in_a_row = 0
            return True
        self.skipped += 1
        self.in_a_row += 1
        log.warning("non-finite loss at step %d: update skipped (%d in a row)", step, self.in_a_row)
        if self.in_a_row >= self.max_in_a_row:
            raise NonFiniteLossError(
                f"{self.in_a_row} consecutive non-finite losses (last at step {step}); lower the lr "
                "or enable clip_grad, then resume from the last checkpoint")
        return False

    def applied(self) -> None:
        """Note that an update was applied (ends a streak of scaler-skipped ones)."""
        self.overflows_in_a_row = 0

    def overflow(self, step: int) -> None:
        """Count update ``step`` as skipped by the fp16 gradient scaler; ``max_in_a_row`` in a row raise."""
        self.overflows += 1
        self.overflows_in_a_row += 1
        log.info("fp16 gradient overflow at step %d: the scaler skipped the update and lowered its scale "
                 "(%d in a row)", step, self.overflows_in_a_row)
        if self.overflows_in_a_row >= self.max_in_a_row:
            raise NonFiniteLossError(
                f"{self.overflows_in_a_row} consecutive fp16 gradient overflows (last at step {step}); lower the "
                "lr, enable clip_grad or use precision bf16, then resume from the last checkpoint")
