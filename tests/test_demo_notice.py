"""The demo model says what it is wherever it is used by default: maedfer predict, maedfer app (issue 17.3)."""

from __future__ import annotations

import pytest
import torch

from maedfer.cli import main
from maedfer.models import create_model, save_model
from maedfer.predict import DEMO_CHECKPOINT, Predictor
from maedfer.predict.loading import DEMO_NOTICE

NAMES = ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]


@pytest.fixture
def demo_cwd(tmp_path, monkeypatch):
    """A working folder holding a (tiny) demo model where the demo run writes it."""
    torch.manual_seed(0)
    model = create_model("lgi_former_test", num_classes=7, img_size=64, num_frames=8, region_size=(2, 2, 4))
    (tmp_path / DEMO_CHECKPOINT).parent.mkdir(parents=True)
    save_model(tmp_path / DEMO_CHECKPOINT, model, class_names=NAMES)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_notice_names_what_the_demo_model_is_and_the_way_to_a_real_one():
    assert "synthesised expressions" in DEMO_NOTICE and "not on real data" in DEMO_NOTICE
    assert "maedfer convert mae_dfer_dfew_fold1.pth dfew_fold1.pt --dataset dfew" in DEMO_NOTICE
    assert "--checkpoint dfew_fold1.pt" in DEMO_NOTICE and "\n" not in DEMO_NOTICE


def test_predict_without_checkpoint_prints_the_notice_once_per_run(demo_cwd, capsys):
    assert main(["predict", "--device", "cpu", "missing1.mp4", "missing2.mp4"]) == 2
    err = capsys.readouterr().err.splitlines()
    notes = [line for line in err if line.startswith("maedfer predict: note:")]
    assert notes == [f"maedfer predict: note: {DEMO_NOTICE}"]
    assert err.index(notes[0]) == 0  # before the per-video lines
    assert sum("missing" in line and "error" in line for line in err) == 2


def test_a_given_checkpoint_prints_no_notice(demo_cwd, capsys):
    assert main(["predict", "--device", "cpu", "--checkpoint", str(DEMO_CHECKPOINT), "missing.mp4"]) == 2
    err = capsys.readouterr().err
    assert "note:" not in err and "synthesised" not in err
    assert Predictor(DEMO_CHECKPOINT, device="cpu").loaded.demo is False


def test_the_app_page_shows_the_notice_for_the_demo_model(demo_cwd, tmp_path):
    from maedfer.app import build_app

    def notices(predictor):
        page = build_app(predictor, out_dir=tmp_path / "out")
        return [b.value for b in page.blocks.values() if getattr(b, "elem_id", None) == "demo-notice"]

    shown = notices(Predictor(None, device="cpu"))
    assert len(shown) == 1 and "synthesised expressions of a few faces" in shown[0]
    assert "maedfer convert mae_dfer_dfew_fold1.pth" in shown[0]
    assert notices(Predictor(DEMO_CHECKPOINT, device="cpu")) == []
