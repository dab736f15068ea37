"""Preemption: SIGTERM or SIGUSR1 during training -> a checkpoint at the next update boundary, then exit 143.

A scheduler that preempts a job, or ends it at its time limit, sends SIGTERM (SLURM: to every process
of the job, then SIGKILL ``KillWait`` seconds later, 30 by default; torchrun's agent forwards it to its
workers and waits 30 s). :class:`PreemptionSignals` turns SIGTERM and SIGUSR1 into a flag while the
engine's update loop runs; the loop asks :meth:`PreemptionSignals.requested` after every update (under
DDP every rank answers and one rank's signal stops them all, at the same update), saves the position
and raises :class:`Preempted`: a ``SystemExit`` with status :data:`PREEMPTED_EXIT_CODE` (143, the
status of a process ended by SIGTERM, 128 + 15). The same command run again continues from that
checkpoint and ends with the weights of an uninterrupted run. Outside the update loop (set-up, the
final test) the signals keep their previous handlers: the process ends at once and the next run
continues from the last checkpoint.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

from maedfer.train.distributed import any_rank

__all__ = ["PREEMPTED_EXIT_CODE", "PREEMPTION_SIGNALS", "Preempted", "PreemptionSignals"]

log = logging.getLogger(__name__)

PREEMPTED_EXIT_CODE = 143  # 128 + SIGTERM: what schedulers and shells read as "terminated, may be requeued"
PREEMPTION_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preempted(SystemExit):
    """Training stopped on a preemption signal after checkpointing; exits with :data:`PREEMPTED_EXIT_CODE`."""

    def __init__(self, message: str) -> None:
        """Keep ``message`` (what was saved, how to continue) and exit with :data:`PREEMPTED_EXIT_CODE`."""
        super().__init__(PREEMPTED_EXIT_CODE)
        self.message = message

    def __str__(self) -> str:
        """Return the message."""
        return self.message


class PreemptionSignals:
    """SIGTERM/SIGUSR1 set a flag while installed (a context manager); :meth:`requested` reads it.

    Installs only in the main thread (elsewhere the signals keep their handlers, with a debug line).
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = PREEMPTION_SIGNALS) -> None:
        """Keep the signals to catch; nothing is installed before ``__enter__``."""
        self.signals = signals
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            log.warning("%s received: checkpointing after the current update", signal.Signals(signum).name)
        self.received = signal.Signals(signum)

    def __enter__(self) -> PreemptionSignals:
        """Catch the signals (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            log.debug("not the main thread: preemption signals are not caught")
            return self
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        """Give the signals back their previous handlers."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def requested(self) -> bool:
        """Tell whether any rank got a preemption signal (a collective under DDP: every rank calls it)."""
        return any_rank(self.received is not None)
