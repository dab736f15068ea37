"""Per-step learning-rate schedule: linear warm-up, then half-cosine down to a minimum.

Same values as VideoMAE's ``utils.cosine_scheduler`` (which the authors use): warm-up is
``np.linspace(warmup_start_lr, base_lr, warmup_steps)`` (it reaches ``base_lr`` on its last step),
then step ``warmup_steps + i`` gets ``min_lr + (base_lr - min_lr) * (1 + cos(pi * i / n)) / 2``
with ``n = total_steps - warmup_steps``. Steps past the end stay at ``min_lr``.
A "step" is one optimizer update.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def lr_at(
    step: int, base_lr: float, min_lr: float, total_steps: int, warmup_steps: int = 0, warmup_start_lr: float = 0.0
) -> float:
    """Learning rate of update ``step`` (0-based)."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup_steps:
        if warmup_steps == 1:
            return warmup_start_lr
        return warmup_start_lr + (base_lr - warmup_start_lr) * step / (warmup_steps - 1)
    if step >= total_steps:
        return min_lr
    i = step - warmup_steps
    n = total_steps - warmup_steps
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * i / n))


class WarmupCosineSchedule:
    """Sets ``group["lr"] = lr_at(step) * group["lr_scale"]`` on every optimizer group.

    Call :meth:`step` once per update, BEFORE ``optimizer.step()``: it applies the lr of the
    current step and advances the counter. The counter is the whole state, so a resumed run
    (``load_state_dict``) continues with exactly the lr it would have had.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        base_lr: float,
        min_lr: float,
        total_steps: int,
        warmup_steps: int = 0,
        warmup_start_lr: float = 0.0,
    ) -> None:
        """Schedule ``total_steps`` updates of ``optimizer``, the first ``warmup_steps`` of them warm-up."""
        if total_steps <= 0:
            raise ValueError(f"total_steps must be positive, got {total_steps}")
        if not 0 <= warmup_steps <= total_steps:
            raise ValueError(f"warmup_steps must lie in 0..{total_steps}, got {warmup_steps}")
        self.optimizer = optimizer
        self.base_lr = base_lr
        self.min_lr = min_lr
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.warmup_start_lr = warmup_start_lr
        self.step_count = 0
        self.last_lr = self.lr_at(0)

    @classmethod
    def from_epochs(
        cls,
        optimizer: torch.optim.Optimizer,
        base_lr: float,
        min_lr: float,
        epochs: int,
        steps_per_epoch: int,
        warmup_epochs: int = 0,
        warmup_start_lr: float = 0.0,
        warmup_steps: int | None = None,
    ) -> WarmupCosineSchedule:
        """VideoMAE's arguments: ``warmup_steps`` (if given) overrides ``warmup_epochs * steps_per_epoch``."""
        warm = warmup_steps if warmup_steps is not None and warmup_steps > 0 else warmup_epochs * steps_per_epoch
        return cls(optimizer, base_lr, min_lr, epochs * steps_per_epoch, warm, warmup_start_lr)

    def lr_at(self, step: int) -> float:
        """Return the (unscaled) lr of update ``step`` under this schedule."""
        return lr_at(step, self.base_lr, self.min_lr, self.total_steps, self.warmup_steps, self.warmup_start_lr)

    def step(self) -> float:
        """Apply the lr of the current step to every group, advance; returns the (unscaled) lr applied."""
        lr = self.lr_at(self.step_count)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        self.step_count += 1
        self.last_lr = lr
        return lr

    def state_dict(self) -> dict[str, Any]:
        """Return the step counter and the settings (checked again by :meth:`load_state_dict`)."""
        return {
            "step_count": self.step_count,
            "base_lr": self.base_lr,
            "min_lr": self.min_lr,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "warmup_start_lr": self.warmup_start_lr,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the step counter; a schedule built with other settings is an error (silent drift otherwise)."""
        mine = self.state_dict()
        changed = {k: (state[k], mine[k]) for k in mine if k != "step_count" and k in state and state[k] != mine[k]}
        if changed:
            raise ValueError(
                f"checkpoint schedule differs from this run's (saved, now): {changed}; "
                "resume with the same lr, epochs and batch size"
            )
        self.step_count = int(state["step_count"])
        self.last_lr = self.lr_at(max(self.step_count - 1, 0))
