"""Model folders in the Hub convention: save/load round trip, the card, export from a run folder, no pickles."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from maedfer.cli import main
from maedfer.hub import HubFolderError, MaedferModel, export_folder, load_pretrained, looks_like_repo_id
from maedfer.models import create_model, save_model
from maedfer.predict import CheckpointError, load_for_prediction

NAMES = ["happy", "sad", "neutral", "angry", "surprise", "disgust", "fear"]
GEOM = dict(img_size=64, num_frames=8, region_size=(2, 2, 4))  # 4 x 4 x 4 tokens


def _tiny(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_model("lgi_former_test", num_classes=7, **GEOM)
    with torch.no_grad():
        model.head.weight.normal_(0.0, 0.5)  # a decisive head: logits differ between clips
    return model.eval()


def _clips() -> torch.Tensor:
    return torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(1))  # (B, C, T, H, W)


@pytest.fixture
def no_unpickling(monkeypatch):
    """Any pickle load while this fixture is active fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)


def _run_folder(root: Path, folds=(1, 2), profile: str = "demo") -> Path:
    """runs/<profile>/finetune/mae_dfer/dfew/fold<k>/ with model.pt and metrics.json, as the workflow writes them."""
    dataset_dir = root / "runs" / profile / "finetune" / "mae_dfer" / "dfew"
    for k in folds:
        fold_dir = dataset_dir / f"fold{k}"
        fold_dir.mkdir(parents=True)
        save_model(fold_dir / "model.pt", _tiny(k), class_names=NAMES,
                   extra={"finetune_config": {"epochs": 3, "base_lr": 0.03, "init": "runs/demo/pretrain/x/model.pt"},
                          "fold": k})
        metrics = {"uar": 0.25 + 0.1 * k, "war": 0.5 + 0.01 * k, "weighted_f1": 0.3, "support": {n: 3 for n in NAMES}}
        (fold_dir / "metrics.json").write_text(json.dumps(metrics))
    return dataset_dir


def test_round_trip_gives_equal_logits_and_only_json_and_safetensors(tmp_path, no_unpickling):
    model = _tiny()
    MaedferModel.from_model(model, class_names=NAMES).save_pretrained(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["arch"] == "lgi_former_test" and config["class_names"] == NAMES
    assert config["arch_kwargs"]["region_size"] == [2, 2, 4] and "init" not in config["arch_kwargs"]
    loaded = MaedferModel.from_pretrained(tmp_path / "m")
    assert not loaded.training and loaded.class_names == NAMES
    with torch.no_grad():
        expected, got = model(_clips()), loaded(_clips())
    assert expected.shape == (2, 7) and torch.equal(expected, got)
    assert not torch.equal(got[0], got[1])  # the clips give different logits: the weights matter
    # a second save from the loaded model writes the same weights and config
    loaded.save_pretrained(tmp_path / "again")
    weights = [(tmp_path / d / "model.safetensors").read_bytes() for d in ("m", "again")]
    assert weights[0] == weights[1]
    assert json.loads((tmp_path / "again" / "config.json").read_text()) == config


def test_export_from_a_run_folder_writes_the_card(tmp_path, capsys):
    dataset_dir = _run_folder(tmp_path)
    out = tmp_path / "hub"
    assert main(["export-hf", str(dataset_dir / "fold1"), str(out), "--repo-id", "someone/maedfer-demo"]) == 0
    assert str(out) in capsys.readouterr().out
    card = (out / "README.md").read_text()
    # the Hub's metadata header
    header = card.split("---")[1]
    assert "library_name: maedfer" in header and "- maedfer-demo-dfew" in header  # the demo's data are not DFEW
    assert "pipeline_tag: video-classification" in header
    assert "type: uar" in header and "value: 0.35" in header
    # architecture, training data, fold results, usage, citation
    assert "## Architecture" in card and "`lgi_former_test`" in card and '"region_size": [2, 2, 4]' in card
    assert "8 frames of 64 x 64" in card and "happy, sad, neutral" in card
    assert "Fine-tuned on **the maedfer demo data (DFEW layout)**, fold 1 of 5" in card
    assert "`maedfer demo-data`" in card and "they are not DFEW" in card
    assert "synthesised expressions of a few faces, not on real data" in card  # and the way to a real model:
    assert "`maedfer convert mae_dfer_dfew_fold1.pth dfew_fold1.pt --dataset dfew`" in card
    assert "runs/demo/pretrain/x/model.pt" in card and "| base_lr | `0.03` |" in card
    assert "| 1 (this model) | 21 | 35.00 | 51.00 | 30.00 |" in card
    assert "| 2 | 21 | 45.00 | 52.00 | 30.00 |" in card
    assert "| mean of 2 folds |  | 40.00 | 51.50 | 30.00 |" in card
    assert "maedfer predict --checkpoint someone/maedfer-demo" in card
    assert "@inproceedings{sun2023maedfer" in card and "10.1145/3581783.3612365" in card
    assert "Sun, Licai and Lian, Zheng and Liu, Bin and Tao, Jianhua" in card
    # not twice into a non-empty folder
    assert main(["export-hf", str(dataset_dir / "fold1"), str(out)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_a_real_dataset_is_named_as_such(tmp_path):
    dataset_dir = _run_folder(tmp_path, folds=(1,), profile="paper")
    card = (export_folder(dataset_dir / "fold1", tmp_path / "hub") / "README.md").read_text()
    header = card.split("---")[1]
    assert "- dfew" in header and "name: DFEW" in header and "split: fold 1 test" in header
    assert "Fine-tuned on **DFEW**, fold 1 of 5" in card and "demo data" not in card
    assert "| 1 (this model) | 21 | 35.00 | 51.00 | 30.00 |" in card and "| mean of" not in card


def test_predict_loads_an_exported_folder_with_the_same_logits(tmp_path, no_unpickling):
    model = _tiny(3)
    with torch.no_grad():
        expected = model(_clips())
    wrapped = MaedferModel.from_model(model, class_names=NAMES)
    wrapped.save_pretrained(tmp_path / "m")
    loaded = load_for_prediction(tmp_path / "m", device="cpu")
    assert loaded.class_names == NAMES and (loaded.num_frames, loaded.img_size) == (8, 64)
    with torch.no_grad():
        assert torch.equal(loaded.model(_clips()), expected)


def test_export_matches_the_model_file(tmp_path):
    dataset_dir = _run_folder(tmp_path, folds=(1,))
    out = export_folder(dataset_dir / "fold1" / "model.pt", tmp_path / "hub")
    from maedfer.models import load_model

    original = load_model(dataset_dir / "fold1" / "model.pt").eval()
    with torch.no_grad():
        assert torch.equal(load_pretrained(out)(_clips()), original(_clips()))


def test_a_pickled_weights_file_is_refused_and_never_opened(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"arch": "lgi_former_test", "arch_kwargs": GEOM}))
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(HubFolderError, match=r"no model\.safetensors \(found pytorch_model\.bin: pickled weights"):
        load_pretrained(folder)
    with pytest.raises(CheckpointError, match="pickled weights are never loaded"):
        load_for_prediction(folder, device="cpu")
    with pytest.raises(FileNotFoundError):  # the class itself reads model.safetensors only, no pickle fallback
        MaedferModel.from_pretrained(folder)
    rc = main(["predict", "--checkpoint", str(folder), "clip.mp4"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "pytorch_model.bin" in err
    assert not marker.exists()


def test_bad_config_is_one_line_naming_the_file(tmp_path):
    folder = tmp_path / "m"
    MaedferModel.from_model(_tiny(), class_names=NAMES).save_pretrained(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(HubFolderError, match=r"config\.json: not valid JSON"):
        load_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"arch_kwargs": {}}))
    with pytest.raises(HubFolderError, match=r"config\.json: key 'arch'"):
        load_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"arch": "lgi_former_test", "arch_kwargs": {**GEOM, "depth": 3}}))
    with pytest.raises(HubFolderError, match="cannot load this model folder"):  # weights of another shape
        load_pretrained(folder)


def test_a_hub_id_downloads_config_and_safetensors_only(tmp_path, monkeypatch, no_unpickling):
    """A Hub id goes through hf_hub_download (served here from a local folder: no network in tests)."""
    import huggingface_hub.hub_mixin as hub_mixin

    import maedfer.hub.model as hub_model

    remote = tmp_path / "remote"
    MaedferModel.from_model(_tiny(), class_names=NAMES).save_pretrained(remote)
    asked = []

    def fake_download(repo_id, filename, **kwargs):
        asked.append((repo_id, filename))
        return str(remote / filename)

    monkeypatch.setattr(hub_mixin, "hf_hub_download", fake_download)
    monkeypatch.setattr(hub_model, "hf_hub_download", fake_download)
    assert looks_like_repo_id("someone/maedfer-demo") and not looks_like_repo_id("runs/demo/model.pt")
    assert not looks_like_repo_id("a/b/c") and not looks_like_repo_id("model.pt")
    model = load_pretrained("someone/maedfer-demo")
    assert asked == [("someone/maedfer-demo", "config.json"), ("someone/maedfer-demo", "model.safetensors")]
    with torch.no_grad():
        assert torch.equal(model(_clips()), _tiny()(_clips()))
    assert load_for_prediction("someone/maedfer-demo", device="cpu").class_names == NAMES


def test_pretrained_encoder_exports_and_predict_refuses_it(tmp_path):
    torch.manual_seed(0)
    encoder = create_model("pretrain_lgi_former_test", img_size=64, num_frames=8, region_size=(2, 2, 4))
    src = save_model(tmp_path / "runs" / "demo" / "pretrain" / "mae_dfer" / "model.pt", encoder)
    out = export_folder(src, tmp_path / "hub")
    card = (out / "README.md").read_text()
    assert "pre-trained, no classification head" in card and "@inproceedings{sun2023maedfer" in card
    assert "Not recorded" in card  # the path names no dataset
    card = (export_folder(src, tmp_path / "hub2", dataset="voxceleb2") / "README.md").read_text()
    assert "Pre-trained (masked autoencoding, no labels) on **the maedfer demo data (VoxCeleb2 layout)**" in card
    assert "they are not VoxCeleb2" in card
    loaded = load_pretrained(out)
    for (k, a), b in zip(encoder.state_dict().items(), loaded.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(CheckpointError, match="pre-training model"):
        load_for_prediction(out, device="cpu")
