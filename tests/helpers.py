"""Helpers shared by test modules (import as ``from tests.helpers import ...``)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

DATA = Path(__file__).parent / "data"

# Geometry of the tiny models used across model tests: 4x4x4 token grid.
TINY = dict(img_size=64, num_frames=8)


def read_official_keys(name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of an official checkpoint, from tests/data/official_keys/<name>_state_dict.txt."""
    out = {}
    for line in (DATA / "official_keys" / f"official_{name}_state_dict.txt").read_text().splitlines():
        if line.strip():
            key, shape = line.split(" ", 1)
            out[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return out


@contextlib.contextmanager
def running_mlflow_server(backend_uri: str, workdir: Path, timeout_s: float = 90.0):
    """``mlflow server`` on 127.0.0.1 (a free port) over ``backend_uri``; yields its base URL, always stops it.
    Skips the calling test if the server does not answer within ``timeout_s``."""
    import pytest

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    log_path = Path(workdir) / "mlflow-server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", backend_uri,
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=workdir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    urllib.request.urlopen(f"{base}/health", timeout=2).close()
                    break
                except (urllib.error.URLError, OSError):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.skip(f"mlflow server did not start: {log_path.read_text(errors='replace')[-300:]}")
                    time.sleep(0.5)
            yield base
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers (own session)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=15)


def rest_json(url: str, body: dict | None = None, timeout: float = 10.0) -> dict:
    """GET (or POST ``body`` as JSON) an MLflow REST endpoint."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                 method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode())
