"""When a model is compiled, and the static-batch wrapper that makes CUDA graphs safe in evaluation."""

from __future__ import annotations

import pytest
import torch

from maedfer.models import create_model
from maedfer.train.compile import StaticBatch, compile_mode, compile_model

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


def test_compile_mode_per_setting_and_device():
    assert compile_mode(False, CUDA) is None
    assert compile_mode("auto", CPU) is None  # the demo and the CPU tests stay eager
    assert compile_mode("auto", CUDA) == "reduce-overhead"  # CUDA graphs on one GPU
    assert compile_mode("auto", CUDA, distributed=True) == "default"  # DDP hooks: no CUDA graphs
    assert compile_mode(True, CUDA) == "reduce-overhead"
    with pytest.raises(ValueError, match="compile must be"):
        compile_mode("yes", CPU)


def test_cpu_compile_needs_native_kernels(monkeypatch):
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")  # the portable numerics the stages and tests run
    with pytest.raises(ValueError, match="MAEDFER_CPU_ISA=native"):
        compile_mode(True, CPU)
    assert compile_mode("auto", CPU) is None  # the default never compiles on CPU
    monkeypatch.delenv("ATEN_CPU_CAPABILITY")
    assert compile_mode(True, CPU) == "default"


def test_eager_mode_returns_the_model_itself():
    model = torch.nn.Linear(3, 2)
    assert compile_model(model, None) is model


def test_static_batch_pads_and_splits_to_one_size():
    torch.manual_seed(0)
    model = create_model("lgi_former_test", num_classes=3).eval()
    calls: list[int] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return model(x)

    x = torch.randn(5, 3, 16, 160, 160)
    with torch.no_grad():
        ref = model(x)
        static = StaticBatch(fn)
        first = static(x[:2])  # fixes the size at 2
        last = static(x[4:])  # padded to 2, one row returned
        big = static(x)  # split into 2 + 2 + 1 (padded)
    assert calls == [2, 2, 2, 2, 2]
    assert first.shape == (2, 3) and last.shape == (1, 3) and big.shape == (5, 3)
    torch.testing.assert_close(last, ref[4:], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(big, ref, atol=1e-5, rtol=1e-5)
