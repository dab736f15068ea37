"""Progress of an ingest: a tqdm bar on a terminal, log lines elsewhere (Snakemake, SLURM, a pipe).

A log line (INFO, logger ``maedfer.data.ingest_progress``) is written every ``every_seconds`` and
when the run ends::

    ingest ravdess: 35/140 clips (25%), 0.41 clips/s, 16.4 frames/s, about 4m16s left

The rate counts only the clips decoded by this run (clips reused from finished shards cost
nothing), and the time left assumes every remaining clip needs decoding.
"""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """``3h02m``, ``4m16s`` or ``12s``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class IngestProgress:
    """Counts processed clips; shows a bar on a terminal or logs a line every ``every_seconds`` otherwise.

    ``bar`` None: a bar only when stderr is a terminal; True/False force it on/off (off: log lines).
    ``every_seconds`` <= 0 turns the log lines off.
    """

    def __init__(self, name: str, total: int | None, bar: bool | None = None, every_seconds: float = 30.0) -> None:
        self.name = name
        self.total = total
        use_bar = sys.stderr.isatty() if bar is None else bool(bar)
        self.bar = tqdm(total=total, desc=name, unit="clip") if use_bar else None
        self.every = float(every_seconds) if not use_bar else 0.0
        self.start = self.last = time.monotonic()
        self.done = 0  # clips processed (stored, reused or skipped)
        self.decoded = 0  # clips this run had to decode
        self.frames = 0  # frames written by this run

    def update(self, decoded: bool, frames: int = 0) -> None:
        """One more clip processed (``decoded``: this run read its source)."""
        self.done += 1
        self.decoded += int(decoded)
        self.frames += int(frames)
        if self.bar is not None:
            self.bar.update(1)
        elif self.every > 0 and time.monotonic() - self.last >= self.every:
            self.log_line()

    def line(self) -> str:
        """The progress line (clips done, rate, time left)."""
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.decoded / elapsed
        text = f"{self.name}: {self.done}"
        if self.total:
            text += f"/{self.total} clips ({100 * self.done / self.total:.0f}%)"
        else:
            text += " clips"
        text += f", {rate:.2f} clips/s, {self.frames / elapsed:.1f} frames/s"
        if self.total and self.done < self.total:
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            text += f", about {format_duration(left)} left" if left != float("inf") else ", time left unknown"
        return text

    def log_line(self) -> None:
        """Log the progress line now."""
        self.last = time.monotonic()
        log.info("%s", self.line())

    def close(self) -> None:
        """Close the bar, or log the final line (when lines are on and at least one was due)."""
        if self.bar is not None:
            self.bar.close()
        elif self.every > 0 and time.monotonic() - self.start >= self.every:
            self.log_line()
