"""Portable CPU numerics: the stage processes run PyTorch's AVX2 kernels unless told otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from maedfer.runtime import RuntimeSettingError, portable_cpu_numerics

PROBE = "import pipeline, torch; torch.ones(2).sum(); print(torch.backends.cpu.get_cpu_capability())"


def test_default_sets_avx2_and_keeps_what_the_user_set():
    env: dict[str, str] = {}
    assert portable_cpu_numerics(env) == {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"}
    env = {"ATEN_CPU_CAPABILITY": "avx512"}
    assert portable_cpu_numerics(env) == {"MKL_CBWR": "AVX2"} and env["ATEN_CPU_CAPABILITY"] == "avx512"
    env = {"MAEDFER_CPU_ISA": "native"}
    assert portable_cpu_numerics(env) == {} and "ATEN_CPU_CAPABILITY" not in env


def test_unknown_choice_is_one_line_naming_the_variable():
    with pytest.raises(RuntimeSettingError, match="MAEDFER_CPU_ISA='avx9' is not one of avx2, default, native"):
        portable_cpu_numerics({"MAEDFER_CPU_ISA": "avx9"})


def _probe(**extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MAEDFER_CPU_ISA")}
    return subprocess.run([sys.executable, "-c", PROBE], env={**env, **extra}, capture_output=True, text=True)


def test_a_stage_process_runs_the_avx2_kernels():
    out = _probe()
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() in ("AVX2", "DEFAULT")  # DEFAULT only on a CPU without AVX2
    bad = _probe(MAEDFER_CPU_ISA="avx9")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "MAEDFER_CPU_ISA" in bad.stderr
