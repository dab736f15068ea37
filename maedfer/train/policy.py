"""The training engine's policies, one definition each: autocast, non-finite losses, the warm-up check.

Autocast: bf16 on CUDA, plain fp32 everywhere else (the CPU demo and the tests). Non-finite
losses: the update is skipped (the gradients are dropped), counted and logged; ``max_in_a_row``
consecutive ones raise :class:`NonFiniteLossError` (the run resumes from its last checkpoint
after the lr or gradient clipping is changed). Warm-up: a warm-up longer than the run is a user
error, refused before any heavy work.
"""

from __future__ import annotations

import logging

import torch

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Too many consecutive updates with a non-finite loss."""


def autocast(device: torch.device) -> torch.autocast:
    """Return the autocast context of a forward pass on ``device``: bf16 on CUDA, disabled (fp32) elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def check_warmup(warmup_epochs: int, epochs: int) -> None:
    """Refuse a warm-up longer than the run (a one-line ValueError naming the flag to change)."""
    if warmup_epochs > epochs:
        raise ValueError(f"warmup_epochs ({warmup_epochs}) is more than epochs ({epochs}); lower --warmup-epochs")


class NonFiniteGuard:
    """Decides whether an update may be applied, counting the skipped ones.

    ``skipped`` counts every non-finite update of this process's run, ``in_a_row`` the current
    streak; a streak of ``max_in_a_row`` raises :class:`NonFiniteLossError`.
    """

    def __init__(self, max_in_a_row: int = 20) -> None:
        """Start with no skipped update; ``max_in_a_row`` must be at least 1."""
        if max_in_a_row < 1:
            raise ValueError(f"max_nonfinite must be >= 1, got {max_in_a_row}")
        self.max_in_a_row = max_in_a_row
        self.skipped = 0
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
