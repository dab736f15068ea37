"""A queued MLflow run that never blocks or crashes training.

Every call is queued and sent by one background thread, so a slow or dead tracking store costs
the training loop nothing. The first failure (store unreachable, broken database, refused
request) logs ONE warning that says tracking is disabled and why; every later call is a no-op.
Closing waits at most ``close_timeout_s`` for the queue to drain. mlflow is imported lazily, in
that thread (the import costs 1-2 s).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from maedfer.tracking.metadata import PARENT_RUN_TAG, code_tags
from maedfer.tracking.records import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_TAGS_PER_BATCH,
    chunks,
    clean_key,
    clean_tags,
    flatten_params,
    log_new_params,
)
from maedfer.tracking.store import (
    connect,
    default_artifact_root,
    default_tracking_uri,
    describe_error,
    experiment_id,
    store_lock,
)

logger = logging.getLogger("maedfer.tracking")  # one logger for the package: one switch, one name in warnings

_STOP = object()


class _Marker:
    """Queued by flush(): set when the worker reaches it."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event


class Tracker:
    """One MLflow run, used as a context manager; every method is safe to call in any state.

    ``run_id``: attach to an existing run instead of creating one (resume after a crash: keep the
    id in the checkpoint's ``extra``); a run that is no longer in the store is replaced by a new one
    (one warning). ``parent_run_id`` nests the new run under a parent. ``lazy_start``: ``with``
    does not open the run, the first record (or :attr:`run_id`) does, so that a resumed training
    can :meth:`continue_run` its killed run first. ``enabled=False`` makes every method a silent
    no-op (use it on ranks other than 0).
    """

    def __init__(
        self,
        experiment: str,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        enabled: bool = True,
        tracking_uri: str | None = None,
        run_id: str | None = None,
        artifact_root: str | Path | None = None,
        close_timeout_s: float = 60.0,
        start_timeout_s: float = 60.0,
        lazy_start: bool = False,
    ) -> None:
        """Keep the settings; nothing connects before :meth:`start` (or the first record)."""
        self.experiment = experiment
        self.run_name = run_name
        self.parent_run_id = parent_run_id
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.artifact_root = Path(artifact_root) if artifact_root else default_artifact_root(self.tracking_uri)
        self.close_timeout_s = close_timeout_s
        self.start_timeout_s = start_timeout_s
        self._initial_tags = dict(tags or {})
        self._initial_params = dict(params or {})
        self._resume_run_id = run_id
        self._enabled = enabled
        self._disabled_reason: str | None = None if enabled else "disabled by caller"
        self._client: Any = None
        self._run_id: str | None = None
        self._started = threading.Event()
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._lazy = lazy_start

    # ---- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Tracker:
        """Start the run (see :meth:`start`), unless ``lazy_start``."""
        if not self._lazy:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        """Close the run: FINISHED; KILLED on KeyboardInterrupt or SystemExit (a preempted training); else FAILED."""
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt | SystemExit):
            status = "KILLED"
        else:
            status = "FAILED"
        self.close(status)

    def start(self) -> Tracker:
        """Start the background thread (it connects and creates the run); returns immediately."""
        if self._thread is not None or self._closed:
            return self
        if not self._enabled:
            self._started.set()
            return self
        self._thread = threading.Thread(target=self._work, name="maedfer-tracker", daemon=True)
        self._thread.start()
        return self

    def close(self, status: str = "FINISHED") -> None:
        """Mark the run ``status`` and wait (at most ``close_timeout_s``) for pending records."""
        if self._closed:
            return
        self._closed = True
        if self._thread is None:
            return
        self._submit(lambda: self._client.set_terminated(self._run_id, status))
        self._queue.put(_STOP)
        self._thread.join(self.close_timeout_s)
        if self._thread.is_alive():
            self._disable(f"the store did not take the pending records within {self.close_timeout_s:.0f} s")

    # ---- state -----------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """True while records are sent: enabled, not disabled by a failure, not closed."""
        return self._enabled and self._disabled_reason is None and not self._closed

    @property
    def disabled_reason(self) -> str | None:
        """Why tracking stopped (the first failure, or "disabled by caller"); None while it works."""
        return self._disabled_reason

    @property
    def run_id(self) -> str | None:
        """The run's id once created (waits up to ``start_timeout_s``); None when tracking is off."""
        if self._thread is None and self._lazy and self.active:
            self.start()
        if self._thread is None:
            return None
        self._started.wait(self.start_timeout_s)
        return self._run_id if self._disabled_reason is None else None

    @property
    def known_run_id(self) -> str | None:
        """The run's id if it is open now, else None; never waits (what a checkpoint records)."""
        return self._run_id if self._started.is_set() and self._disabled_reason is None else None

    def continue_run(self, run_id: str) -> bool:
        """Record into the existing run ``run_id`` (a killed training's) instead of a new one.

        Only before the run opened (``lazy_start``); False (one warning) when another run is open already.
        """
        if not self.active:
            return False
        if self._thread is not None:
            if self.run_id != run_id:
                logger.warning("MLflow run %s is open already: run %s is not continued", self.run_id, run_id)
                return False
            return True
        self._resume_run_id = run_id
        return True

    def fail_if_running(self, run_id: str) -> None:
        """Mark the run ``run_id`` FAILED if it still shows RUNNING (its process is known to be dead)."""
        if not self.active:
            return

        def send() -> None:
            run = self._client.get_run(run_id)
            if run.info.status == "RUNNING":
                self._client.set_terminated(run_id, "FAILED")
                logger.info("MLflow run %s of a killed training (not continued) marked FAILED", run_id)

        self._submit(send)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything queued so far was sent; False on timeout or when tracking is off."""
        if self._thread is None or not self._thread.is_alive():
            return False
        done = threading.Event()
        self._queue.put(_Marker(done))
        return done.wait(self.close_timeout_s if timeout_s is None else timeout_s) and self._disabled_reason is None

    # ---- records ---------------------------------------------------------------------------
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Numbers (floats, ints, 0-d tensors/arrays) under cleaned names; others are skipped."""
        if not self.active:
            return
        ts = int(time.time() * 1000)
        values: dict[str, float] = {}
        for k, v in metrics.items():
            try:
                values[clean_key(k)] = float(v.item() if hasattr(v, "item") else v)
            except (TypeError, ValueError):
                logger.debug("metric %r has non-numeric value %r: skipped", k, v)
        if not values:
            return

        def send() -> None:
            from mlflow.entities import Metric

            batch = [Metric(k, v, ts, int(step or 0)) for k, v in values.items()]
            for chunk in chunks(batch, MAX_METRICS_PER_BATCH):
                self._client.log_batch(self._run_id, metrics=chunk)

        self._submit(send)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Nested dicts become dotted keys; long values are truncated; re-logged keys keep their first value."""
        if not self.active:
            return
        flat = flatten_params(params)
        self._submit(lambda: self._log_params_now(flat))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags on the run (None values are skipped; names cleaned, values cut to MLflow's limit)."""
        if not self.active:
            return
        clean = clean_tags({k: v for k, v in tags.items() if v is not None})

        def send() -> None:
            from mlflow.entities import RunTag

            for chunk in chunks([RunTag(k, v) for k, v in clean.items()], MAX_PARAMS_TAGS_PER_BATCH):
                self._client.log_batch(self._run_id, tags=chunk)

        self._submit(send)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file or folder. It is sent later: keep it in place until :meth:`flush` or close."""
        if not self.active:
            return
        path = Path(path)
        if not path.exists():
            logger.warning("artifact %s does not exist: not logged", path)
            return
        if path.is_dir():
            self._submit(lambda: self._client.log_artifacts(self._run_id, str(path), artifact_path))
        else:
            self._submit(lambda: self._client.log_artifact(self._run_id, str(path), artifact_path))

    # ---- worker ----------------------------------------------------------------------------
    def _submit(self, fn: Callable[[], Any]) -> None:
        if self._thread is None:
            self.start()
        if self._thread is not None:
            self._queue.put(fn)

    def _disable(self, reason: str) -> None:
        if self._disabled_reason is None:
            self._disabled_reason = reason
            logger.warning(
                "MLflow tracking disabled (store %s): %s; training continues without it", self.tracking_uri, reason
            )

    def _log_params_now(self, flat: Mapping[str, Any]) -> None:
        changed = log_new_params(self._client, self._run_id, flat)
        if changed:
            logger.warning(
                "run %s already has other values for params %s; MLflow keeps the first ones", self._run_id, changed[:10]
            )

    def _open(self) -> None:
        client = connect(self.tracking_uri, probe_timeout_s=5.0)
        tags = {**code_tags(), **{k: v for k, v in self._initial_tags.items() if v is not None}}
        if self.parent_run_id:
            tags[PARENT_RUN_TAG] = self.parent_run_id
        cleaned = clean_tags(tags)
        run = self._existing_run(client) if self._resume_run_id else None
        if run is not None:
            client.update_run(run.info.run_id, status="RUNNING")
            from mlflow.entities import RunTag

            for chunk in chunks([RunTag(k, v) for k, v in cleaned.items()], MAX_PARAMS_TAGS_PER_BATCH):
                client.log_batch(run.info.run_id, tags=chunk)
        else:
            with store_lock(self.tracking_uri):
                exp_id = experiment_id(client, self.experiment, self.artifact_root)
            run = client.create_run(exp_id, run_name=self.run_name, tags=cleaned)
        self._client = client
        self._run_id = run.info.run_id
        if self._initial_params:
            self._log_params_now(flatten_params(self._initial_params))

    def _existing_run(self, client: Any) -> Any:
        """The run to continue, or None (one warning) when the store no longer has it: a new run is created."""
        try:
            run = client.get_run(self._resume_run_id)
        except Exception as e:
            logger.warning("MLflow run %s is not in the store %s (%s): a new run is created",
                           self._resume_run_id, self.tracking_uri, describe_error(e))
            return None
        if run.info.lifecycle_stage == "deleted":
            logger.warning("MLflow run %s was deleted: a new run is created", self._resume_run_id)
            return None
        return run

    def _work(self) -> None:
        try:
            self._open()
        except Exception as e:
            self._disable(describe_error(e))
        finally:
            self._started.set()
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, _Marker):
                item.event.set()
                continue
            if self._disabled_reason is not None:
                continue
            try:
                item()
            except Exception as e:
                self._disable(describe_error(e))
