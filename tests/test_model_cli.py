"""model-stats, convert, and maedfer's own model files."""

from __future__ import annotations

import json

import pytest
import torch

from maedfer.cli import main
from maedfer.models import create_model, load_model, save_model
from maedfer.models.checkpoint import ModelFileError
from maedfer.models.stats import VARIANTS, stats_table
from tests.helpers import TINY, read_official_keys

# Exact parameter counts and fvcore GFLOPs measured on the authors' release (ARCHITECTURE.md).
EXACT_PARAMS = {"intra + inter + LGI (LGI-Former)": 84_878_343, "ViT (global space-time)": 86_232_583}
MEASURED = {
    "intra": (51.23, 42.70),
    "intra + inter": (68.04, 42.84),
    "intra + LGI": (68.06, 49.62),
    "intra + inter + LGI (LGI-Former)": (84.88, 49.75),
    "ViT (global space-time)": (86.23, 80.76),
    "region 1x5x10 (M=16)": (84.88, 49.81),
    "region 2x2x10 (M=20)": (84.88, 50.04),
    "region 2x5x10 (M=8)": (84.88, 49.75),
    "region 2x10x10 (M=4)": (84.88, 50.71),
    "region 4x5x10 (M=4)": (84.88, 50.71),
    "tiny (256-d)": (21.47, 12.98),
    "small (384-d)": (47.93, 28.39),
    "base (512-d)": (84.88, 49.75),
}


def test_stats_match_paper_and_measurements():
    rows = stats_table()
    assert {r["table"] for r in rows} == {"3", "4", "9", "10"} and len(rows) == len(VARIANTS)
    for r in rows:
        assert round(r["params_m"], 1) == r["paper_params_m"], r
        assert abs(r["gflops"] - r["paper_gflops"]) <= 0.1, r
        if r["variant"] in EXACT_PARAMS:
            assert r["params"] == EXACT_PARAMS[r["variant"]]
        if r["variant"] in MEASURED:
            params_m, gflops = MEASURED[r["variant"]]
            assert round(r["params_m"], 2) == params_m, r
            assert abs(r["gflops"] - gflops) < 0.006, r


def test_pretrain_model_size():
    with torch.device("meta"):
        m = create_model("pretrain_lgi_former_base_patch16_160", init=False)
    count = lambda mod: sum(p.numel() for p in mod.parameters())  # noqa: E731
    assert count(m) == 92_760_192
    assert count(m.encoder) == 84_874_752 and count(m.decoder) == 7_688_448
    with torch.device("meta"):
        assert count(create_model("lgi_former_base_patch16_160", num_classes=11, init=False)) == 84_880_395


def test_model_stats_cli(capsys):
    assert main(["model-stats", "--table", "9", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["variant"] for r in rows] == ["tiny (256-d)", "small (384-d)", "base (512-d)"]
    assert main(["model-stats", "--table", "3"]) == 0
    out = capsys.readouterr().out
    assert "84,878,343" in out and "80.76" in out


def test_save_and_load_roundtrip(tmp_path, tiny_clip):
    model = create_model("lgi_former_test", num_classes=3, region_size=(2, 2, 4), **TINY).eval()
    path = save_model(tmp_path / "m.pt", model, class_names=["a", "b", "c"], extra={"epoch": 3})
    loaded = load_model(path).eval()
    assert loaded.class_names == ["a", "b", "c"] and loaded.extra == {"epoch": 3}
    torch.testing.assert_close(loaded(tiny_clip), model(tiny_clip), rtol=0, atol=0)
    assert not list(tmp_path.glob(".m.pt*"))  # no temp file left behind
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ModelFileError, match="maedfer convert"):
        load_model(tmp_path / "other.pt")


def test_convert_cli(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    sd = {k: torch.randn(s, generator=g) for k, s in read_official_keys("finetune").items()}
    torch.save({"model": sd, "epoch": 99}, tmp_path / "dfew.pth")
    out = tmp_path / "dfew.pt"
    assert (
        main(
            [
                "convert",
                str(tmp_path / "dfew.pth"),
                str(out),
                "--class-names",
                "happy,sad,neutral,angry,surprise,disgust,fear",
            ]
        )
        == 0
    )
    assert "lgi_former_base_patch16_160" in capsys.readouterr().out
    model = load_model(out)
    assert model.class_names[0] == "happy" and model.num_classes == 7
    assert torch.equal(model.head.weight, sd["head.weight"])
    assert main(["convert", str(tmp_path / "missing.pth"), str(out)]) == 2
    assert "not found" in capsys.readouterr().err


def test_cli_help_and_version(capsys):
    from maedfer.cli import SUBCOMMANDS

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and "maedfer" in capsys.readouterr().out
    assert main([]) == 0
    assert "model-stats" in capsys.readouterr().out
    for module, _ in SUBCOMMANDS.values():  # every listed sub-command exists
        assert hasattr(__import__(module, fromlist=["add_parser"]), "add_parser"), module


def test_convert_cli_decoder_heads_and_target(tmp_path, capsys):
    """A decoder width outside the table needs --decoder-heads (the error names it); --target sets the target."""
    from tests import official_reference as ref

    official = ref.LGIPretrain(64, 1, 2, (8, 10, 10), (2, 5, 10), dec_dim=48, dec_depth=1, dec_heads=4)
    torch.save({"model": official.state_dict()}, tmp_path / "pretrain.pth")
    out = tmp_path / "pretrain.pt"
    assert main(["convert", str(tmp_path / "pretrain.pth"), str(out), "--num-heads", "2"]) == 2
    assert "--decoder-heads N" in capsys.readouterr().err
    args = ["--num-heads", "2", "--decoder-heads", "4", "--target", "videomae"]
    assert main(["convert", str(tmp_path / "pretrain.pth"), str(out), *args]) == 0
    model = load_model(out)
    assert model.arch == "pretrain_lgi_former_base_patch16_160"
    assert model.arch_kwargs["decoder_heads"] == 4 and model.target == "videomae"
