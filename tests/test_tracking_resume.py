"""A resumed training's MLflow run: lazy start, continuing a killed run, marking a dead one FAILED, KILLED on exit."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from maedfer.tracking import Tracker


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_lazy_tracker_opens_nothing_without_records(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'never' / 'mlflow.db'}"  # a folder that does not exist: no store is touched
    with Tracker("maedfer-test", tracking_uri=uri, lazy_start=True) as tr:
        assert tr.known_run_id is None
    assert not (tmp_path / "never").exists()
    assert Tracker("maedfer-test", enabled=False).continue_run("abc") is False


@pytest.mark.slow
def test_a_resumed_training_continues_its_run_and_a_dead_one_is_failed(tmp_path: Path, caplog) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    killed = Tracker("maedfer-test", tracking_uri=uri).start()  # never closed: as after kill -9
    killed.log_metrics({"train/loss": 2.0}, step=1)
    assert killed.flush() and killed.known_run_id == killed.run_id
    first = killed.run_id
    assert _client(uri).get_run(first).info.status == "RUNNING"

    with Tracker("maedfer-test", tracking_uri=uri, lazy_start=True) as resumed:
        assert resumed.continue_run(first)
        resumed.log_metrics({"train/loss": 1.0}, step=2)
    assert resumed.run_id == first
    run = _client(uri).get_run(first)
    assert run.info.status == "FINISHED"
    assert [m.step for m in _client(uri).get_metric_history(first, "train/loss")] == [1, 2]

    with caplog.at_level(logging.WARNING, logger="maedfer.tracking"):
        with Tracker("maedfer-test", tracking_uri=uri) as eager:  # opened already: the id cannot change
            assert eager.run_id != first and eager.continue_run(first) is False
        with Tracker("maedfer-test", tracking_uri=uri, lazy_start=True) as gone:
            assert gone.continue_run("0" * 32)
            gone.log_metrics({"x": 1.0}, step=0)
        assert gone.run_id not in (None, "0" * 32)  # a run the store does not have: a new one
    assert any("is not continued" in r.getMessage() for r in caplog.records)
    assert any("is not in the store" in r.getMessage() for r in caplog.records)

    dead = Tracker("maedfer-test", tracking_uri=uri).start()
    assert dead.flush()
    with Tracker("maedfer-test", tracking_uri=uri) as fresh:
        fresh.fail_if_running(dead.run_id)
        fresh.fail_if_running(first)  # FINISHED: left alone
    assert _client(uri).get_run(dead.run_id).info.status == "FAILED"
    assert _client(uri).get_run(first).info.status == "FINISHED"

    with pytest.raises(SystemExit):
        with Tracker("maedfer-test", tracking_uri=uri) as preempted:
            raise SystemExit(143)
    assert _client(uri).get_run(preempted.run_id).info.status == "KILLED"
