"""LGI-Former, ViT and the classifier: shapes, gradients, determinism, ablations, head."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from maedfer.models import LGIFormer, RegionLayoutError, create_model, list_models
from tests.helpers import TINY


def _lgi(**kw):
    return create_model("lgi_former_test", num_classes=5, region_size=(2, 2, 4), **TINY, **kw)


@pytest.mark.parametrize("pool", ["region", "local"])
def test_classifier_shapes_and_finite(tiny_clip, pool):
    model = _lgi(pool=pool).eval()
    logits = model(tiny_clip)
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()
    out = model.encoder(tiny_clip)
    assert out.tokens.shape == (2, 64, 64)  # (B, M*N, C)
    assert out.region_tokens.shape == (2, 4, 64)  # (B, M, C)
    assert out.positions.shape == (2, 64)
    assert sorted(out.positions[0].tolist()) == list(range(64))


def test_vit_shapes(tiny_clip):
    model = create_model("vit_test", num_classes=3, **TINY).eval()
    assert model(tiny_clip).shape == (2, 3)
    assert model.encoder(tiny_clip).positions[0].tolist() == list(range(64))


def test_gradient_reaches_every_parameter(tiny_clip):
    model = _lgi(pool="local").train()
    model(tiny_clip).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


def test_region_pooling_leaves_only_last_interaction_unused(tiny_clip):
    """With representative-token pooling, the last block's local-global step cannot affect the output."""
    model = _lgi(pool="region").train()
    model(tiny_clip).sum().backward()
    missing = {n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0}
    assert missing == {n for n, _ in model.named_parameters() if n.startswith("encoder.blocks.1.lgi.")}


def test_pooled_head_is_fc_norm_of_mean(tiny_clip):
    model = _lgi(pool="region").eval()
    with torch.no_grad():
        out = model.encoder(tiny_clip)
        expected = model.head(model.fc_norm(out.region_tokens.mean(1)))
        torch.testing.assert_close(model(tiny_clip), expected)
        model.pool = "local"
        expected_local = model.head(model.fc_norm(out.tokens.mean(1)))
        torch.testing.assert_close(model(tiny_clip), expected_local)


@pytest.mark.parametrize("use_inter,use_lgi", [(False, False), (True, False), (False, True)])
def test_ablations_drop_their_modules(tiny_clip, use_inter, use_lgi):
    model = _lgi(use_inter=use_inter, use_lgi=use_lgi).eval()
    names = {n for n, _ in model.named_parameters()}
    assert any(".inter." in n for n in names) == use_inter
    assert any(".lgi." in n for n in names) == use_lgi
    assert torch.isfinite(model(tiny_clip)).all()


def test_region_size_must_tile_grid():
    with pytest.raises(RegionLayoutError, match="does not tile"):
        LGIFormer(embed_dim=64, depth=1, num_heads=2, region_size=(3, 5, 10))


def test_region_partition_matches_paper_layout():
    enc = LGIFormer(embed_dim=64, depth=1, num_heads=2, region_size=(2, 5, 10))
    assert enc.num_regions == 8 and enc.tokens_per_region == 100
    idx = enc.region_index  # (M, N) raster index
    for n in range(8):
        t = idx[n] // 100
        rows = (idx[n] % 100) // 10
        assert set(t.tolist()) == {2 * (n // 2), 2 * (n // 2) + 1}
        assert set(rows.tolist()) == (set(range(5)) if n % 2 == 0 else set(range(5, 10)))


def test_seeded_determinism(tiny_clip):
    torch.manual_seed(3)
    a = _lgi().eval()
    torch.manual_seed(3)
    b = _lgi().eval()
    torch.testing.assert_close(a(tiny_clip), b(tiny_clip), rtol=0, atol=0)


def test_drop_path_is_stochastic_in_train_only(tiny_clip):
    model = _lgi(drop_path_rate=0.5)
    model.train()
    torch.manual_seed(0)
    y1 = model(tiny_clip)
    y2 = model(tiny_clip)
    assert not torch.allclose(y1, y2)
    model.eval()
    torch.testing.assert_close(model(tiny_clip), model(tiny_clip))


@pytest.mark.parametrize("arch", ["lgi_former_test", "vit_test"])
def test_head_init_scale_scales_only_the_new_head(arch):
    """The authors' init_scale: trunc_normal(0.02) x scale on the head, the encoder's init unchanged."""
    kw = {"num_classes": 5, **TINY, **({"region_size": (2, 2, 4)} if arch.startswith("lgi") else {})}
    torch.manual_seed(0)
    small = create_model(arch, **kw)  # the default, 0.001
    torch.manual_seed(0)
    full = create_model(arch, head_init_scale=1.0, **kw)
    torch.testing.assert_close(full.head.weight * 0.001, small.head.weight, rtol=1e-6, atol=0)
    assert 0.01 < full.head.weight.std().item() < 0.03
    for (name, a), b in zip(small.encoder.state_dict().items(), full.encoder.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


def test_bf16_autocast(tiny_clip):
    model = _lgi().eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(tiny_clip)
    assert torch.isfinite(logits.float()).all()
    torch.testing.assert_close(logits.float(), model(tiny_clip), atol=0.05, rtol=0.05)


def test_registry_lists_paper_models():
    names = set(list_models())
    for n in (
        "lgi_former_base_patch16_160",
        "lgi_former_small_patch16_160",
        "lgi_former_tiny_patch16_160",
        "vit_base_patch16_160",
        "pretrain_lgi_former_base_patch16_160",
        "pretrain_vit_base_patch16_160",
        "lgi_former_test",
        "vit_test",
    ):
        assert n in names
    with pytest.raises(ValueError, match="unknown model"):
        create_model("lgi_former_huge")


def test_layer_ids_for_layer_decay():
    model = create_model("lgi_former_test", init=False)
    assert model.num_layers == 4
    assert model.layer_id("encoder.patch_embed.proj.weight") == 0
    assert model.layer_id("encoder.blocks.0.intra.attn.qkv.weight") == 1
    assert model.layer_id("encoder.blocks.1.mlp.fc1.weight") == 2
    assert model.layer_id("head.weight") == 3
    assert model.layer_id("encoder.region_tokens") == 3  # authors: representative tokens at the head's lr
    assert model.no_weight_decay() == {"encoder.region_tokens"}


COMPILE_CHECK = """
import torch
from maedfer.models import create_model
from tests.helpers import TINY
x = torch.randn(2, 3, 8, 64, 64, generator=torch.Generator().manual_seed(0))
model = create_model("lgi_former_test", num_classes=5, region_size=(2, 2, 4), **TINY).eval()
with torch.no_grad():
    torch.testing.assert_close(torch.compile(model)(x), model(x), atol=1e-4, rtol=1e-4)
"""


@pytest.mark.slow
def test_torch_compile_cpu():
    # compiling on CPU runs with the CPU's native kernels (maedfer.train.compile refuses it under portable ones)
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR")}
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", COMPILE_CHECK], cwd=root, env={**env, "MAEDFER_CPU_ISA": "native"},
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
