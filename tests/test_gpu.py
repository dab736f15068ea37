"""Checks that need a CUDA device (skipped without one): bf16 autocast and torch.compile on GPU."""

from __future__ import annotations

import pytest
import torch

from maedfer.models import create_model

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_base_models_bf16_train_step_on_gpu():
    x = torch.randn(4, 3, 16, 160, 160, device="cuda")
    for name in ("lgi_former_base_patch16_160", "vit_base_patch16_160"):
        model = create_model(name, num_classes=7).cuda().train()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x).float().logsumexp(-1).mean()
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_pretrain_bf16_compile_matches_eager():
    torch.manual_seed(0)
    model = create_model("pretrain_lgi_former_base_patch16_160").cuda().eval()
    x = torch.randn(2, 3, 16, 160, 160, device="cuda")
    mask = model.sample_mask(2, generator=torch.Generator().manual_seed(0), device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        eager = model(x, mask).float()
        compiled = torch.compile(model)(x, mask).float()
    assert torch.isfinite(compiled).all()
    torch.testing.assert_close(compiled, eager, atol=0.1, rtol=0.1)


def test_gpu_fp32_matches_cpu():
    torch.manual_seed(0)
    model = create_model("lgi_former_base_patch16_160", num_classes=7).eval()
    x = torch.randn(2, 3, 16, 160, 160)
    with torch.no_grad():
        cpu = model(x)
        gpu = model.cuda()(x.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, atol=2e-3, rtol=2e-3)


def test_cuda_graph_compile_train_step_and_static_eval_match_eager():
    from maedfer.train.compile import StaticBatch, compile_mode, compile_model

    torch.manual_seed(0)
    model = create_model("lgi_former_test", num_classes=7).cuda()
    mode = compile_mode("auto", torch.device("cuda"))
    assert mode == "reduce-overhead"
    fwd = compile_model(model, mode)
    x = torch.randn(4, 3, 16, 160, 160, device="cuda")
    for _ in range(3):  # warm-up, record, replay
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = fwd(x).float().logsumexp(-1).mean()
        loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        eager = model(x[:3]).float()
        static = StaticBatch(fwd, size=4)
        compiled = torch.cat([static(x[:2]), static(x[2:3])]).float()
    torch.testing.assert_close(compiled, eager, atol=1e-3, rtol=1e-3)
