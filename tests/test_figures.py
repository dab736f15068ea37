"""Figures: Fig. 4 reconstructions at two mask ratios, Fig. 5 t-SNE, confusion matrices, training curves, CLI."""

from __future__ import annotations

import csv
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from maedfer.data.datasets import FinetuneDataset
from maedfer.metrics import compute_metrics
from maedfer.models import create_model, load_model, save_model
from maedfer.models.targets import unnormalise
from maedfer.viz import figures
from maedfer.viz.reconstruction import reconstruction_rows
from tests.test_datasets import write_toy_index

GEOM = dict(img_size=64, num_frames=8, region_size=(2, 2, 4))
NAMES = ["a", "b", "c"]
REPO = Path(__file__).resolve().parents[1]


def png_size(path: Path) -> tuple[int, int]:
    head = Path(path).read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures")
    index = write_toy_index(root / "shards")
    torch.manual_seed(0)
    save_model(root / "pre.pt", create_model("pretrain_lgi_former_test", mask_ratio=0.9, **GEOM))
    save_model(root / "cls.pt", create_model("lgi_former_test", num_classes=3, **GEOM), class_names=NAMES)
    return root, index


def cli():
    from pipeline.figures import main

    return main


def test_fig4_one_png_per_ratio_from_a_model_pretrained_at_another_ratio(setup, tmp_path):
    root, index = setup
    out = tmp_path / "fig4"
    summary = figures.reconstruction_figures(root / "pre.pt", index, out, clip="clip003", seed=1, stride=2)
    assert summary["clip_id"] == "clip003" and summary["pretrain_mask_ratio"] == 0.9
    assert [f["mask_ratio"] for f in summary["figures"]] == [0.75, 0.9]
    # 4x4x4 cube grid, regions of 2x4 patches: 2 of 8 visible at 0.75, 1 of 8 at 0.9
    assert [f["visible_cubes"] for f in summary["figures"]] == [16, 8]
    assert all(f["loss"] > 0 for f in summary["figures"])
    for name in ("fig4-mask0.75.png", "fig4-mask0.90.png"):
        assert png_size(out / name) == (620, 625)  # 4 cube slots: 100 * (1.2 * 4 + 1.4) x 100 * 1.25 * 5
    assert json.loads((out / "fig4.json").read_text()) == summary
    figures.reconstruction_figures(root / "pre.pt", index, tmp_path / "again", clip="clip003", seed=1, stride=2)
    assert (tmp_path / "again" / "fig4-mask0.90.png").read_bytes() == (out / "fig4-mask0.90.png").read_bytes()
    # the default clip is drawn with the seed, from the selected split only
    drawn = figures.reconstruction_figures(root / "pre.pt", index, tmp_path / "d", ratios=[0.5], fold=1,
                                           split="test", stride=2)
    assert drawn["clip_id"] in {"clip000", "clip002", "clip004", "clip006"}
    assert png_size(tmp_path / "d" / "fig4-mask0.50.png") == (620, 625)
    with pytest.raises(figures.FigureInputError, match="no clip 'clip999'"):
        figures.reconstruction_figures(root / "pre.pt", index, tmp_path / "x", clip="clip999")
    with pytest.raises(figures.FigureInputError, match=r"mask ratios must lie in \(0, 1\)"):
        figures.reconstruction_figures(root / "pre.pt", index, tmp_path / "x", ratios=[0.75, 1.0])


def test_gray_motion_row_shows_the_true_difference_of_visible_cubes():
    model = create_model("pretrain_lgi_former_test", mask_ratio=0.75, **GEOM)
    video = torch.randn(1, 3, 8, 64, 64, generator=torch.Generator().manual_seed(0)).clamp(-2, 2)
    mask = model.sample_mask(1, generator=torch.Generator().manual_seed(0))
    rows = reconstruction_rows(model, video, mask, motion="gray")
    x = unnormalise(video)[0].permute(1, 2, 3, 0)  # (T, H, W, 3)
    diff = x[1::2] - x[::2]  # (T', H, W, 3)
    expected = ((0.5 + 0.5 * diff / diff.abs().max()).clamp(0, 1) * 255).round().numpy()
    visible = ~mask[0].reshape(4, 4, 4)  # (T', h, w)
    for t, hh, ww in torch.nonzero(visible).tolist()[:4]:
        patch = (t, slice(hh * 16, hh * 16 + 16), slice(ww * 16, ww * 16 + 16))
        np.testing.assert_allclose(rows[3][patch], expected[patch], atol=1)
    assert not np.array_equal(rows[3], reconstruction_rows(model, video, mask, motion="magnitude")[3])
    with pytest.raises(ValueError, match="motion must be"):
        reconstruction_rows(model, video, mask, motion="rainbow")


def test_fig5_tsne_of_two_view_test_embeddings(setup, tmp_path):
    root, index = setup
    out = tmp_path / "fig5" / "fold1.png"
    summary = figures.tsne_figure(root / "cls.pt", index, 1, out, stride=2, batch_size=3, seed=0)
    assert png_size(out) == (800, 600)
    data = np.load(out.with_suffix(".npz"))
    assert data["features"].shape == (4, 64) and data["tsne"].shape == (4, 2)
    assert data["clip_ids"].tolist() == ["clip000", "clip002", "clip004", "clip006"]
    assert data["labels"].tolist() == [0, 2, 1, 0]  # label = clip number % 3
    assert data["class_names"].tolist() == NAMES
    assert summary["num_clips"] == 4 and summary["perplexity"] == 1.0  # clamped: 4 clips
    # each row is the mean of the clip's two test views' pooled features
    model = load_model(root / "cls.pt").eval()
    views, _, _ = FinetuneDataset(index, 1, "test", "test", stride=2, clip_len=8, size=64)[1]  # (2, C, T, H, W)
    with torch.no_grad():
        expected = model.forward_features(views).mean(0)
    np.testing.assert_allclose(data["features"][1], expected.numpy(), rtol=1e-4, atol=1e-5)
    assert not np.allclose(data["features"][1], data["features"][0])


def _fold_run(path: Path, labels: list[int], preds: list[int], names: list[str] = NAMES) -> Path:
    path.mkdir(parents=True)
    probs = np.eye(len(names))[preds]  # (N, C)
    (path / "metrics.json").write_text(json.dumps(compute_metrics(labels, probs, names)))
    with (path / "predictions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["clip_id", "label", "pred", *[f"p_{c}" for c in names]])
        for i, (y, p) in enumerate(zip(labels, preds, strict=True)):
            w.writerow([f"clip{i:03d}", y, p, *probs[i]])
    return path


def test_confusion_of_one_fold_and_of_pooled_folds(tmp_path):
    f1 = _fold_run(tmp_path / "fold1", [0, 0, 1, 2], [0, 1, 1, 2])
    f2 = _fold_run(tmp_path / "fold2", [0, 1, 1, 2, 2], [0, 1, 0, 2, 0])
    one = figures.confusion_figure([f1], tmp_path / "one.png")
    assert one["pooled"]["confusion_matrix"] == json.loads((f1 / "metrics.json").read_text())["confusion_matrix"]
    pooled = figures.confusion_figure([f1, f2], tmp_path / "out" / "pooled.png")
    assert pooled["pooled"]["confusion_matrix"] == [[2, 1, 0], [1, 2, 0], [1, 0, 2]]
    assert pooled["pooled"]["war"] == pytest.approx(6 / 9)
    assert pooled["folds"]["mean"]["war"] == pytest.approx((3 / 4 + 3 / 5) / 2)
    assert png_size(tmp_path / "out" / "pooled.png") == (400, 400) == tuple(pooled["size_px"])  # 3 classes: 4 in
    assert json.loads((tmp_path / "out" / "pooled.json").read_text())["pooled"]["num_samples"] == 9
    other = _fold_run(tmp_path / "other", [0, 1], [0, 1], names=["x", "y", "z"])
    with pytest.raises(ValueError, match="differ from"):
        figures.confusion_figure([f1, other], tmp_path / "bad.png")
    (f2 / "predictions.csv").unlink()
    with pytest.raises(ValueError, match=r"fold2/predictions.csv: not found"):
        figures.confusion_figure([f1, f2], tmp_path / "bad.png")


def test_confusion_of_the_best_epoch_reads_the_best_files(tmp_path):
    fold = _fold_run(tmp_path / "fold1", [0, 0, 1, 2], [0, 1, 1, 2])  # last epoch: 3 of 4 right
    best = _fold_run(tmp_path / "best", [0, 1, 2], [0, 1, 2])  # best-validation epoch: all right
    (best / "metrics.json").rename(fold / "metrics_best.json")
    (best / "predictions.csv").rename(fold / "predictions_best.csv")
    summary = figures.confusion_figure([fold], tmp_path / "best.png", suffix="_best")
    assert summary["pooled"]["uar"] == 1.0 and summary["pooled"]["num_samples"] == 3
    assert figures.confusion_figure([fold], tmp_path / "last.png")["pooled"]["num_samples"] == 4
    (fold / "predictions_best.csv").unlink()
    with pytest.raises(ValueError, match=r"fold1/predictions_best.csv: not found"):
        figures.confusion_figure([fold], tmp_path / "bad.png", suffix="_best")

def _history(path: Path, records: list[dict]) -> Path:
    path.mkdir(parents=True)
    (path / "history.json").write_text(json.dumps(records))
    return path


def test_training_curves_of_several_runs(tmp_path):
    folds = [_history(tmp_path / "ft" / f"fold{k}", [
        {"epoch": e, "train/loss": 2.0 / e + k, "val/uar": 0.1 * e, "val/war": 0.12 * e, "train/clips_per_s": 50.0}
        for e in range(1, 4)]) for k in range(1, 6)]
    summary = figures.curves_figure(folds, tmp_path / "ft.png")
    assert summary["kind"] == "finetune" and summary["epochs"] == [3] * 5
    assert png_size(tmp_path / "ft.png") == (1200, 450)
    pre = _history(tmp_path / "pre" / "run", [{"epoch": 1, "loss": 1.0, "lr": 1e-4, "clips_per_s": 9.0}])
    assert figures.curves_figure([pre], tmp_path / "pre.png")["kind"] == "pretrain"
    assert png_size(tmp_path / "pre.png") == (1200, 450)
    with pytest.raises(ValueError, match="cannot overlay fine-tuning and pre-training"):
        figures.curves_figure([folds[0], pre], tmp_path / "mixed.png")
    empty = _history(tmp_path / "empty", [])
    with pytest.raises(ValueError, match="non-empty list"):
        figures.curves_figure([empty], tmp_path / "e.png")
    odd = _history(tmp_path / "odd", [{"epoch": 1, "acc": 0.5}])
    with pytest.raises(ValueError, match="records need the keys"):
        figures.curves_figure([odd], tmp_path / "e.png")
    with pytest.raises(ValueError, match="no history.json"):
        figures.curves_figure([tmp_path / "nowhere"], tmp_path / "e.png")
    assert not (tmp_path / "e.png").exists()


@pytest.mark.parametrize("argv,message", [
    (["fig4", "--checkpoint", "{root}/missing.pt", "--index", "{index}", "--out", "{tmp}/o"],
     "missing.pt: model file not found"),
    (["fig4", "--checkpoint", "{root}/cls.pt", "--index", "{index}", "--out", "{tmp}/o"],
     "cls.pt: is a fine-tuned classifier (lgi_former_test); this figure needs a pre-training model"),
    (["fig5", "--checkpoint", "{root}/pre.pt", "--index", "{index}", "--fold", "1", "--out", "{tmp}/o.png"],
     "pre.pt: is a pre-training model (pretrain_lgi_former_test); this figure needs a fine-tuned classifier"),
    (["fig5", "--checkpoint", "{root}/cls.pt", "--index", "{index}", "--fold", "3", "--out", "{tmp}/o.png"],
     "index.parquet: no clip in the test split of fold 3; the index has test folds [1, 2]"),
    (["fig4", "--checkpoint", "{root}/pre.pt", "--index", "{tmp}/none.parquet", "--out", "{tmp}/o"],
     "none.parquet: no index"),
    (["confusion", "--runs", "{tmp}/nofold", "--out", "{tmp}/c.png"], "nofold/metrics.json: not found"),
    (["curves", "--runs", "{tmp}/norun", "--out", "{tmp}/c.png"], "norun/history.json: no history.json"),
])
def test_cli_bad_input_is_one_line_and_exit_2(setup, tmp_path, capsys, argv, message):
    root, index = setup
    argv = [a.format(root=root, index=index, tmp=tmp_path) for a in argv]
    assert cli()(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"figures {argv[0]}: error: ") and message in err, err
    assert not list(tmp_path.glob("**/*.png"))


@pytest.mark.slow
def test_cli_fig4_logs_to_mlflow(setup, tmp_path):
    import os
    import subprocess
    import sys

    from mlflow.tracking import MlflowClient

    root, index = setup
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = [sys.executable, "-m", "pipeline.figures", "fig4", "--checkpoint", str(root / "pre.pt"),
           "--index", str(index), "--out", str(tmp_path / "fig4"), "--clip-index", "2", "--stride", "2",
           "--mlflow-experiment", "figs"]
    proc = subprocess.run(cmd, cwd=REPO, env={**os.environ, "MLFLOW_TRACKING_URI": uri}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["clip_id"] == "clip002" and len(summary["figures"]) == 2
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("figs").experiment_id])
    logged = sorted(Path(a.path).name for a in client.list_artifacts(run.info.run_id, "figures"))
    assert logged == ["fig4-mask0.75.png", "fig4-mask0.90.png", "fig4.json"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_figures_on_cuda_match_cpu(setup, tmp_path):
    root, index = setup
    cpu = figures.reconstruction_figures(root / "pre.pt", index, tmp_path / "cpu", clip=1, stride=2, device="cpu")
    gpu = figures.reconstruction_figures(root / "pre.pt", index, tmp_path / "gpu", clip=1, stride=2, device="cuda")
    for a, b in zip(cpu["figures"], gpu["figures"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3)
        assert png_size(Path(b["png"])) == png_size(Path(a["png"]))
    t_cpu = figures.tsne_figure(root / "cls.pt", index, 1, tmp_path / "cpu.png", stride=2, device="cpu")
    t_gpu = figures.tsne_figure(root / "cls.pt", index, 1, tmp_path / "gpu.png", stride=2, device="cuda")
    f_cpu, f_gpu = np.load(t_cpu["npz"])["features"], np.load(t_gpu["npz"])["features"]
    np.testing.assert_allclose(f_gpu, f_cpu, atol=0.1)  # bf16 autocast on the GPU
