"""A thin MLflow wrapper that never blocks or crashes training.

Every call is queued and sent by one background thread, so a slow or dead tracking store costs
the training loop nothing. The first failure (store unreachable, broken database, refused
request) logs ONE warning that says tracking is disabled and why; every later call is a no-op.
Closing waits at most ``close_timeout_s`` for the queue to drain. mlflow is imported lazily, in
that thread (the import costs 1-2 s).

Store: ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<cwd>/mlflow.db``; for a sqlite store the
experiments this module creates keep their artifacts beside the database, in
``<db folder>/mlruns/<experiment>``. Telemetry is switched off (``MLFLOW_DISABLE_TELEMETRY``)
unless the environment already says otherwise.

Layout: one experiment per dataset (e.g. ``maedfer-finetune-dfew``), one parent run per
group of folds (:func:`find_or_create_parent_run`, found again by its ``maedfer.group`` tag), one
child run per fold (``parent_run_id``). Only rank 0 should track: pass ``enabled=dist.is_main``.

    parent = find_or_create_parent_run("maedfer-finetune-dfew", group="dfew-lgi-v1")
    with Tracker("maedfer-finetune-dfew", run_name="fold1", parent_run_id=parent,
                 tags=run_tags(dataset="dfew", fold=1, index_checksum=sha), params=cfg) as tr:
        tr.log_metrics({"train/loss": 1.2, "lr": 1e-3}, step=100)
        tr.log_artifact("runs/dfew/fold1/metrics.json")
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import queue
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# MLflow's limits (mlflow.utils.validation), repeated to avoid importing mlflow here.
MAX_KEY_LENGTH = 250
MAX_PARAM_VALUE_LENGTH = 6000
MAX_TAG_VALUE_LENGTH = 8000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000

PARENT_RUN_TAG = "mlflow.parentRunId"
GROUP_TAG = "maedfer.group"
ROLE_TAG = "maedfer.role"
_TRUNCATED = "...[truncated]"
_STOP = object()


class _Marker:
    """Queued by flush(): set when the worker reaches it."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def _sqlite_file(uri: str) -> Path | None:
    if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
        return Path(uri[len("sqlite:///") :])
    return None


def _default_artifact_root(uri: str) -> Path | None:
    db = _sqlite_file(uri)
    return db.parent / "mlruns" if db is not None else None


def git_commit(path: str | Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of the repository holding ``path`` (default: this package), or None."""
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def git_dirty(path: str | Path | None = None) -> bool | None:
    """True when tracked files have uncommitted changes; None without git."""
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def run_tags(
    dataset: str | None = None, fold: int | str | None = None, index_checksum: str | None = None, **extra: Any
) -> dict[str, str]:
    """The tags every maedfer run carries (whatever the caller knows), under fixed names."""
    tags = {"dataset": dataset, "fold": fold, "index_checksum": index_checksum, **extra}
    return {k: str(v) for k, v in tags.items() if v is not None}


def _code_tags() -> dict[str, str]:
    tags = {
        "mlflow.source.name": Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python",
        "host": socket.gethostname(),
    }
    commit = git_commit()
    if commit:
        tags["git_commit"] = commit
        tags["mlflow.source.git.commit"] = commit
        dirty = git_dirty()
        if dirty is not None:
            tags["git_dirty"] = str(dirty).lower()
    return tags


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists and other values stay leaves)."""
    flat: dict[str, Any] = {}
    for k, v in params.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            flat.update(flatten_params(v, prefix=f"{key}."))
        else:
            flat[key] = v
    return flat


def clean_key(key: str) -> str:
    """A metric/param/tag name MLflow accepts: allowed characters only, no path tricks, <= 250 chars."""
    key = re.sub(r"[^/\w.\- :]", "_", str(key)).strip("/")[:MAX_KEY_LENGTH] or "_"
    if not _unique_path(key):
        key = key.replace("/", "_")
    if not _unique_path(key):
        key = "_" + key[: MAX_KEY_LENGTH - 1]
    return key


def _unique_path(key: str) -> bool:
    """MLflow refuses names that resolve to other names as paths (``a//b``, ``./a``, ``../a``)."""
    norm = posixpath.normpath(key)
    return norm == key and norm != "." and not norm.startswith(("..", "/"))


def _clip(value: Any, limit: int) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _probe_http(uri: str, timeout_s: float) -> None:
    """Raise ConnectionError if nothing answers at ``uri`` (any HTTP answer counts as reachable)."""
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ConnectionError(f"no MLflow server answers at {uri} ({reason})") from e


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise find-or-create across processes sharing one sqlite store (parallel folds)."""
    db = _sqlite_file(uri)
    if db is None:
        yield
        return
    import fcntl

    lock = db.parent / "mlruns" / f".{db.name}.lock"  # beside the artifacts (ignored by git with them)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _connect(uri: str, probe_timeout_s: float) -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if uri.startswith(("http://", "https://")):
        _probe_http(uri, probe_timeout_s)
    from mlflow.tracking import MlflowClient

    # A new sqlite store is created (schema migrations) by the first client; parallel fold jobs
    # racing on that corrupt each other's migrations, so one process at a time.
    with _store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # touches the store: a broken one fails here
    return client


def _describe(e: BaseException) -> str:
    """One short line: exception type and the first line of its message (SQL and tracebacks cut)."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return _clip(f"{type(e).__name__}: {first}", 300)


def _experiment_id(client: Any, name: str, artifact_root: Path | None) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage != "active":
            client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    location = None
    if artifact_root is not None:
        location = str(Path(artifact_root).resolve() / re.sub(r"[^\w.-]", "_", name))
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception:  # another process created it first
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _run_bounded(fn: Callable[[], Any], timeout_s: float, what: str) -> tuple[Any, str | None]:
    """Run ``fn`` in a daemon thread; (result, None) or (None, why it failed or timed out)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except Exception as e:
            box["error"] = _describe(e)

    t = threading.Thread(target=target, name=f"maedfer-{what}", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        return None, f"{what} took longer than {timeout_s:.0f} s"
    return box.get("result"), box.get("error")


# Public names for other tracking code (e.g. maedfer.results.tracking): a store client with the
# sqlite start-up lock, and a call bounded in time so that tracking never blocks a stage.
connect = _connect
run_bounded = _run_bounded


def find_or_create_parent_run(
    experiment: str,
    group: str,
    run_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    tracking_uri: str | None = None,
    enabled: bool = True,
    timeout_s: float = 60.0,
) -> str | None:
    """Id of the parent run tagged ``maedfer.group=<group>`` in ``experiment``, created if missing.

    Returns None (after one warning) when tracking does not work; children then run unnested.
    A new parent is left FINISHED; log fold aggregates to it later with ``Tracker(run_id=...)``.
    """
    if not enabled:
        return None
    uri = tracking_uri or default_tracking_uri()
    safe_group = str(group).replace("'", "_")

    def work() -> str:
        client = _connect(uri, probe_timeout_s=min(5.0, timeout_s))
        with _store_lock(uri):
            exp_id = _experiment_id(client, experiment, _default_artifact_root(uri))
            found = client.search_runs(
                [exp_id],
                filter_string=f"tags.`{GROUP_TAG}` = '{safe_group}' and tags.`{ROLE_TAG}` = 'parent'",
                max_results=1,
                order_by=["attributes.start_time ASC"],
            )
            if found:
                return found[0].info.run_id
            all_tags = {
                **_code_tags(),
                **{k: str(v) for k, v in (tags or {}).items()},
                GROUP_TAG: safe_group,
                ROLE_TAG: "parent",
            }
            run = client.create_run(
                exp_id,
                run_name=run_name or safe_group,
                tags={clean_key(k): _clip(v, MAX_TAG_VALUE_LENGTH) for k, v in all_tags.items()},
            )
            _log_params(client, run.info.run_id, flatten_params(params or {}))
            client.set_terminated(run.info.run_id, "FINISHED")
            return run.info.run_id

    run_id, error = _run_bounded(work, timeout_s, "mlflow-parent-run")
    if error:
        logger.warning("MLflow tracking disabled for the parent run of %r (store %s): %s", group, uri, error)
        return None
    return run_id


def _log_params(client: Any, run_id: str, flat: Mapping[str, Any]) -> list[str]:
    """Log params not yet on the run; returns the keys whose logged value differs (kept as logged)."""
    from mlflow.entities import Param

    existing = client.get_run(run_id).data.params
    new, changed = [], []
    for k, v in flat.items():
        key, value = clean_key(k), _clip(v, MAX_PARAM_VALUE_LENGTH)
        if key in existing:
            if existing[key] != value:
                changed.append(key)
            continue
        existing[key] = value
        new.append(Param(key, value))
    for chunk in _chunks(new, MAX_PARAMS_TAGS_PER_BATCH):
        client.log_batch(run_id, params=chunk)
    return changed


class Tracker:
    """One MLflow run, used as a context manager; every method is safe to call in any state.

    ``run_id``: attach to an existing run instead of creating one (resume after a crash: keep the
    id in the checkpoint's ``extra``). ``parent_run_id`` nests the new run under a parent.
    ``enabled=False`` makes every method a silent no-op (use it on ranks other than 0).
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
    ) -> None:
        self.experiment = experiment
        self.run_name = run_name
        self.parent_run_id = parent_run_id
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self.artifact_root = Path(artifact_root) if artifact_root else _default_artifact_root(self.tracking_uri)
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

    # ---- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Tracker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
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
        return self._enabled and self._disabled_reason is None and not self._closed

    @property
    def disabled_reason(self) -> str | None:
        return self._disabled_reason

    @property
    def run_id(self) -> str | None:
        """The run's id once created (waits up to ``start_timeout_s``); None when tracking is off."""
        if self._thread is None:
            return None
        self._started.wait(self.start_timeout_s)
        return self._run_id if self._disabled_reason is None else None

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
            for chunk in _chunks(batch, MAX_METRICS_PER_BATCH):
                self._client.log_batch(self._run_id, metrics=chunk)

        self._submit(send)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Nested dicts become dotted keys; long values are truncated; re-logged keys keep their first value."""
        if not self.active:
            return
        flat = flatten_params(params)
        self._submit(lambda: self._log_params_now(flat))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self.active:
            return
        clean = {clean_key(k): _clip(v, MAX_TAG_VALUE_LENGTH) for k, v in tags.items() if v is not None}

        def send() -> None:
            from mlflow.entities import RunTag

            for chunk in _chunks([RunTag(k, v) for k, v in clean.items()], MAX_PARAMS_TAGS_PER_BATCH):
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
        changed = _log_params(self._client, self._run_id, flat)
        if changed:
            logger.warning(
                "run %s already has other values for params %s; MLflow keeps the first ones", self._run_id, changed[:10]
            )

    def _open(self) -> None:
        client = _connect(self.tracking_uri, probe_timeout_s=5.0)
        tags = {**_code_tags(), **{k: v for k, v in self._initial_tags.items() if v is not None}}
        if self.parent_run_id:
            tags[PARENT_RUN_TAG] = self.parent_run_id
        clean_tags = {clean_key(k): _clip(v, MAX_TAG_VALUE_LENGTH) for k, v in tags.items()}
        if self._resume_run_id:
            run = client.get_run(self._resume_run_id)
            client.update_run(run.info.run_id, status="RUNNING")
            from mlflow.entities import RunTag

            for chunk in _chunks([RunTag(k, v) for k, v in clean_tags.items()], MAX_PARAMS_TAGS_PER_BATCH):
                client.log_batch(run.info.run_id, tags=chunk)
        else:
            with _store_lock(self.tracking_uri):
                exp_id = _experiment_id(client, self.experiment, self.artifact_root)
            run = client.create_run(exp_id, run_name=self.run_name, tags=clean_tags)
        self._client = client
        self._run_id = run.info.run_id
        if self._initial_params:
            self._log_params_now(flatten_params(self._initial_params))

    def _work(self) -> None:
        try:
            self._open()
        except Exception as e:
            self._disable(_describe(e))
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
                self._disable(_describe(e))
