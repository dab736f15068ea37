"""The authors' released .pth files carry an argparse.Namespace under "args": every entry point takes them
(weights-only loading with Namespace allowed, nothing unpickled beyond it), and a pickle with any other
global is still refused without running it."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from maedfer.models import create_model
from maedfer.models.checkpoint import ModelFileError, read_model_file
from maedfer.models.official import maedfer_to_official

REPO = Path(__file__).resolve().parents[1]


def _official_finetune(path: Path) -> torch.nn.Module:
    model = create_model("lgi_former_tiny_patch16_160", num_classes=7, init=False)  # the smallest official size
    torch.save({"model": maedfer_to_official(model.state_dict(), "finetune"), "epoch": 99,
                "args": argparse.Namespace(nb_classes=7, lg_region_size=[2, 5, 10],
                                           lg_classify_token_type="region")}, path)
    return model


class _Payload:
    """Unpickling this would create a file: the loaders must refuse it without running it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_read_model_file_takes_namespace_args_as_a_foreign_file(tmp_path):
    path = tmp_path / "dfew_fold1.pth"
    _official_finetune(path)
    with pytest.raises(ModelFileError, match="not a maedfer model file"):  # the cue to convert, not a pickle error
        read_model_file(path)


def test_evaluate_and_predict_load_an_official_checkpoint_with_args(tmp_path):
    from maedfer.predict.loading import load_for_prediction
    from maedfer.train.evaluate import load_classifier

    path = tmp_path / "dfew_fold1.pth"
    model = _official_finetune(path)
    loaded = load_classifier(path)
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert load_for_prediction(path, device="cpu").arch == "lgi_former_tiny_patch16_160"


def test_finetune_init_takes_an_official_pretraining_checkpoint_with_args(tmp_path):
    from maedfer.train.transfer import load_pretrained_encoder

    pre = create_model("pretrain_lgi_former_tiny_patch16_160", init=False)
    path = tmp_path / "checkpoint-49.pth"
    torch.save({"model": maedfer_to_official(pre.state_dict(), "pretrain"),
                "args": argparse.Namespace(model="pretrain_videomae_base_patch16_160", mask_ratio=0.9)}, path)
    clf = create_model("lgi_former_tiny_patch16_160", num_classes=7, init=False)
    load_pretrained_encoder(clf, path)
    enc = {k: v for k, v in pre.encoder.state_dict().items() if not k.startswith("norm.")}
    for k, v in enc.items():
        assert torch.equal(clf.encoder.state_dict()[k], v), k


def test_a_pickle_with_other_globals_is_refused_and_runs_nothing(tmp_path):
    from maedfer.train.evaluate import load_classifier

    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "args": _Payload(marker)}, path)
    with pytest.raises(ModelFileError):
        read_model_file(path)
    with pytest.raises(ValueError, match="trust"):  # the official loader's one-line advice (--trust-pickle)
        load_classifier(path)
    assert not marker.exists()


@pytest.mark.slow
def test_predict_cli_takes_an_official_checkpoint_with_args(tmp_path):
    """The issue's reproduction: `maedfer predict V.mp4 --checkpoint f` with the authors' form of f."""
    import cv2
    import numpy as np

    path = tmp_path / "dfew_fold1.pth"
    _official_finetune(path)
    video = tmp_path / "v.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (96, 96))
    for _ in range(8):
        writer.write(np.zeros((96, 96, 3), np.uint8))
    writer.release()
    r = subprocess.run([sys.executable, "-m", "maedfer.cli", "predict", str(video), "--checkpoint", str(path),
                        "--json"], cwd=REPO, capture_output=True, text=True, timeout=600)
    # a black clip has no face: the one-line no-face message, i.e. the checkpoint itself loaded
    assert "not a maedfer model file" not in r.stderr and "UnpicklingError" not in r.stderr, r.stderr
    assert "Namespace" not in r.stderr, r.stderr
