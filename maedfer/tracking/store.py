"""The MLflow tracking store: where it is, how to reach it, and calls that never block a stage.

Store: ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<cwd>/mlflow.db``; for a sqlite store the
experiments this package creates keep their artifacts beside the database, in
``<db folder>/mlruns/<experiment>``. Processes sharing one sqlite store serialise store creation and
find-or-create through a file lock beside those artifacts (:func:`store_lock`). Telemetry is
switched off (``MLFLOW_DISABLE_TELEMETRY``) unless the environment already says otherwise.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from maedfer.tracking.records import clip_text


def default_tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a sqlite store ``mlflow.db`` in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` store URI; None for other stores and in-memory sqlite."""
    if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
        return Path(uri[len("sqlite:///") :])
    return None


def default_artifact_root(uri: str) -> Path | None:
    """``<db folder>/mlruns`` for a sqlite store (experiments keep artifacts there); None otherwise."""
    db = sqlite_file(uri)
    return db.parent / "mlruns" if db is not None else None


def probe_http(uri: str, timeout_s: float) -> None:
    """Raise ConnectionError if nothing answers at ``uri`` (any HTTP answer counts as reachable)."""
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ConnectionError(f"no MLflow server answers at {uri} ({reason})") from e


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Serialise find-or-create across processes sharing one sqlite store (parallel folds); no-op otherwise."""
    db = sqlite_file(uri)
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


def connect(uri: str, probe_timeout_s: float) -> Any:
    """An ``MlflowClient`` for ``uri`` that has touched the store once (a broken store fails here).

    An HTTP store is probed first (``probe_timeout_s``); a sqlite store is opened under
    :func:`store_lock`.
    """
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    if uri.startswith(("http://", "https://")):
        probe_http(uri, probe_timeout_s)
    from mlflow.tracking import MlflowClient

    # A new sqlite store is created (schema migrations) by the first client; parallel fold jobs
    # racing on that corrupt each other's migrations, so one process at a time.
    with store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # touches the store: a broken one fails here
    return client


def describe_error(e: BaseException) -> str:
    """One short line: exception type and the first line of its message (SQL and tracebacks cut)."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return clip_text(f"{type(e).__name__}: {first}", 300)


def experiment_id(client: Any, name: str, artifact_root: Path | None) -> str:
    """Id of the experiment ``name``: restored if deleted, created with artifacts under ``artifact_root`` if missing.

    The experiment is tagged for MLflow's model-training view with the DFER saved view
    (:func:`maedfer.tracking.ui.tag_training_experiment`; a failure there is only logged).
    """
    exp_id = _find_or_create_experiment(client, name, artifact_root)
    try:
        from maedfer.tracking.ui import tag_training_experiment

        tag_training_experiment(client, exp_id)
    except Exception as e:  # the UI tags are a convenience: never the reason a stage loses its tracking
        import logging

        logging.getLogger("maedfer.tracking").debug("experiment %s not tagged for the UI: %s", name, describe_error(e))
    return exp_id


def _find_or_create_experiment(client: Any, name: str, artifact_root: Path | None) -> str:
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


def run_bounded(fn: Callable[[], Any], timeout_s: float, what: str) -> tuple[Any, str | None]:
    """Run ``fn`` in a daemon thread; (result, None) or (None, why it failed or timed out)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = fn()
        except Exception as e:
            box["error"] = describe_error(e)

    t = threading.Thread(target=target, name=f"maedfer-{what}", daemon=True)
    t.start()
    t.join(timeout_s)
    if t.is_alive():
        return None, f"{what} took longer than {timeout_s:.0f} s"
    return box.get("result"), box.get("error")
