"""MLflow tracking through a real sqlite store; broken stores must neither raise nor block."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from maedfer.tracking import (
    MAX_PARAM_VALUE_LENGTH,
    PARENT_RUN_TAG,
    Tracker,
    clean_key,
    find_or_create_parent_run,
    flatten_params,
    git_commit,
    run_tags,
)


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "maedfer.tracking" and r.levelno == logging.WARNING]


def test_helpers() -> None:
    assert flatten_params({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": {}}) == {"a.b": 1, "a.c.d": [1, 2], "e": {}}
    assert clean_key("train/loss@top1 (x)") == "train/loss_top1 _x_"
    assert clean_key("/../a") == "_.._a" and clean_key("a//b") == "a__b" and clean_key("val/uar") == "val/uar"
    assert len(clean_key("k" * 400)) == 250
    assert run_tags(dataset="dfew", fold=2, index_checksum=None, stage="finetune") == {
        "dataset": "dfew",
        "fold": "2",
        "stage": "finetune",
    }
    commit = git_commit()
    assert commit is None or len(commit) == 40


@pytest.mark.slow
def test_parent_child_runs_record_everything(tmp_path: Path, caplog) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp = "maedfer-test-dfew"
    parent = find_or_create_parent_run(
        exp, group="dfew-v1", tags={"dataset": "dfew"}, params={"epochs": 3}, tracking_uri=uri
    )
    assert parent is not None
    assert find_or_create_parent_run(exp, group="dfew-v1", tracking_uri=uri) == parent  # found by its tag
    assert find_or_create_parent_run(exp, group="dfew-v2", tracking_uri=uri) != parent

    artifact = tmp_path / "metrics.json"
    artifact.write_text('{"uar": 0.5}')
    long_value = "x" * (MAX_PARAM_VALUE_LENGTH + 500)
    child_ids = []
    for fold in (1, 2):
        params = {"optim": {"lr": 1e-3, "betas": [0.9, 0.999]}, "note": long_value}
        with Tracker(
            exp,
            run_name=f"fold{fold}",
            parent_run_id=parent,
            tracking_uri=uri,
            tags=run_tags(dataset="dfew", fold=fold, index_checksum="abc123"),
            params=params,
        ) as tr:
            for step in range(3):
                tr.log_metrics({"train/loss": 1.0 / (step + 1), "lr": 1e-3, "bad": "text"}, step=step)
            tr.set_tags({"status_note": "ok"})
            tr.log_artifact(artifact)
            tr.log_artifact(tmp_path / "missing.png")  # warns, does not raise
            child_ids.append(tr.run_id)
    client = _client(uri)
    for fold, run_id in zip((1, 2), child_ids, strict=True):
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert run.data.tags[PARENT_RUN_TAG] == parent
        assert run.data.tags["fold"] == str(fold) and run.data.tags["index_checksum"] == "abc123"
        assert run.data.tags["status_note"] == "ok" and run.data.tags["mlflow.runName"] == f"fold{fold}"
        assert ("git_commit" in run.data.tags) == (git_commit() is not None)
        assert run.data.params["optim.lr"] == "0.001" and run.data.params["optim.betas"] == "[0.9, 0.999]"
        assert len(run.data.params["note"]) == MAX_PARAM_VALUE_LENGTH and run.data.params["note"].endswith("]")
        assert "bad" not in run.data.metrics
        history = client.get_metric_history(run_id, "train/loss")
        assert [(m.step, round(m.value, 4)) for m in history] == [(0, 1.0), (1, 0.5), (2, 0.3333)]
        assert [f.path for f in client.list_artifacts(run_id)] == ["metrics.json"]
        assert run.info.artifact_uri.startswith(str(tmp_path / "mlruns"))
    assert client.get_run(parent).data.params["epochs"] == "3"
    assert any("missing.png" in w for w in _warnings(caplog))

    # resume: attach to an existing run, log more, keep the first param values
    with Tracker(exp, run_id=child_ids[0], tracking_uri=uri, params={"optim": {"lr": 5.0}, "resumed": 1}) as tr:
        tr.log_metrics({"train/loss": 0.1}, step=3)
    run = client.get_run(child_ids[0])
    assert run.data.params["optim.lr"] == "0.001" and run.data.params["resumed"] == "1"
    assert len(client.get_metric_history(child_ids[0], "train/loss")) == 4
    assert run.info.status == "FINISHED"


@pytest.mark.slow
def test_failed_block_marks_run_failed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(RuntimeError, match="boom"):
        with Tracker("maedfer-test", run_name="crash", tracking_uri=uri) as tr:
            tr.log_metrics({"x": 1}, step=0)
            raise RuntimeError("boom")
    assert _client(uri).get_run(tr.run_id).info.status == "FAILED"


@pytest.mark.parametrize("uri", ["http://127.0.0.1:9", "sqlite:////proc/maedfer-no-such-dir/mlflow.db"])
def test_unreachable_store_warns_once_and_training_continues(tmp_path: Path, caplog, uri: str) -> None:
    artifact = tmp_path / "a.txt"
    artifact.write_text("a")
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="maedfer.tracking"):
        assert find_or_create_parent_run("maedfer-test", group="g", tracking_uri=uri) is None
        caplog.clear()
        trained = 0
        with Tracker("maedfer-test", run_name="r", tracking_uri=uri, params={"a": 1}) as tr:
            for step in range(50):
                tr.log_metrics({"loss": 1.0}, step=step)
                trained += 1
            tr.set_tags({"k": "v"})
            tr.log_artifact(artifact)
            assert tr.run_id is None and tr.flush() is False
    assert trained == 50 and time.monotonic() - t0 < 20
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "tracking disabled" in warnings[0] and uri in warnings[0]
    assert not tr.active and tr.disabled_reason


FOLD_SCRIPT = """
import sys
from maedfer.tracking import Tracker, find_or_create_parent_run
uri, fold = sys.argv[1], sys.argv[2]
parent = find_or_create_parent_run("maedfer-par", group="g", tracking_uri=uri)
with Tracker("maedfer-par", run_name="fold" + fold, parent_run_id=parent, tracking_uri=uri) as tr:
    for step in range(100):
        tr.log_metrics({"loss": float(step)}, step=step)
    assert tr.flush() and parent
"""


@pytest.mark.slow
def test_parallel_fold_jobs_share_a_new_sqlite_store(tmp_path: Path) -> None:
    """Several processes creating one new store at once (Snakemake running folds in parallel)."""
    import os
    import subprocess
    import sys

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [
        subprocess.Popen([sys.executable, "-c", FOLD_SCRIPT, uri, str(f)], env=env, stderr=subprocess.PIPE, text=True)
        for f in (1, 2, 3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "tracking disabled" not in err, err[-2000:]
    client = _client(uri)
    runs = client.search_runs([client.get_experiment_by_name("maedfer-par").experiment_id])
    parents = [r for r in runs if r.data.tags.get("maedfer.role") == "parent"]
    children = sorted((r for r in runs if PARENT_RUN_TAG in r.data.tags), key=lambda r: r.info.run_name)
    assert len(parents) == 1 and [r.info.run_name for r in children] == ["fold1", "fold2", "fold3"]
    for r in children:
        assert r.data.tags[PARENT_RUN_TAG] == parents[0].info.run_id
        assert len(client.get_metric_history(r.info.run_id, "loss")) == 100


def test_hanging_store_never_blocks_the_loop(caplog) -> None:
    import socket

    with socket.socket() as server:  # accepts connections (kernel backlog) but never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
        with caplog.at_level(logging.WARNING, logger="maedfer.tracking"):
            t0 = time.monotonic()
            tr = Tracker("maedfer-test", run_name="r", tracking_uri=uri, close_timeout_s=1.0).start()
            for step in range(200):
                tr.log_metrics({"loss": 1.0}, step=step)
            loop_s = time.monotonic() - t0
            tr.close()
            total_s = time.monotonic() - t0
    assert loop_s < 0.5 and total_s < 3.0
    warnings = _warnings(caplog)
    assert len(warnings) == 1 and "within 1 s" in warnings[0]


def test_disabled_tracker_is_silent(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="maedfer.tracking"):
        with Tracker("x", enabled=False) as tr:
            tr.log_metrics({"a": 1.0}, step=0)
            tr.log_params({"a": 1})
            assert tr.run_id is None
    assert _warnings(caplog) == [] and find_or_create_parent_run("x", "g", enabled=False) is None
