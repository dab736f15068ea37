"""Stopping an ingest cleanly on SIGTERM (SLURM's time limit) or SIGINT (Ctrl-C).

While :class:`StopSignals` is active in the main thread, the first SIGTERM or SIGINT only sets
a flag: the ingest finishes the clip it is on, closes the open shard at that clip boundary (so
a re-run resumes from it) and raises :class:`IngestInterrupted`. A second signal raises
KeyboardInterrupt at once (the shard writer still keeps the clips completed before it).
Worker processes ignore both signals (:func:`ignore_stop_signals`): the main process decides.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)


class IngestInterrupted(Exception):
    """An ingest stopped by a signal after closing its shards; the message says how to resume."""

    def __init__(self, signum: int, done: int, total: int | None, shards: str) -> None:
        self.signum = int(signum)
        self.done = int(done)
        self.total = total
        name = signal.Signals(self.signum).name
        of = f" of {total}" if total is not None else ""
        super().__init__(
            f"stopped by {name} after {done}{of} clips; the finished clips are kept in {shards}: run the same "
            "command again to resume from them"
        )

    @property
    def exit_status(self) -> int:
        """The shell's status for a process ended by this signal (143 for SIGTERM, 130 for SIGINT)."""
        return 128 + self.signum


def ignore_stop_signals() -> None:
    """Process-pool initializer: workers ignore SIGTERM and SIGINT (the main process stops them)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


class StopSignals:
    """Context manager: SIGTERM/SIGINT set :attr:`signum` (first one) instead of killing the process.

    Outside the main thread (where handlers cannot be installed) it does nothing.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[signal.Signals, Any] = {}

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self.signum is not None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signum = signum
        log.debug("%s received: finishing the current clip, then closing the shard", signal.Signals(signum).name)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
