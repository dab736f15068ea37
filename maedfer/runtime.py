"""Portable CPU numerics: the same floats on every x86-64 machine with AVX2, whatever else it has.

PyTorch picks its CPU kernels at run time by the instruction sets the CPU has: on a CPU with AVX-512 it
runs AVX-512 kernels, elsewhere AVX2 ones, and the two round differently (reductions are split into
different vector widths). A demo trained on one machine then gives other weights, and after 100 epochs
other test scores, on a machine of another CPU generation. The pipeline's stages therefore ask PyTorch for
its AVX2 kernels (``ATEN_CPU_CAPABILITY=avx2``) and MKL for its AVX2 code path (``MKL_CBWR=AVX2``) unless
told otherwise: set ``MAEDFER_CPU_ISA=native`` to let them choose (faster on AVX-512 CPUs, not portable),
or set ``ATEN_CPU_CAPABILITY`` / ``MKL_CBWR`` yourself (yours win).

Both variables are read when the first CPU kernel runs, so :func:`portable_cpu_numerics` must run before
any tensor work (``pipeline/__init__.py`` calls it first thing). GPU kernels are not affected.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

ISA_VARIABLE = "MAEDFER_CPU_ISA"
ISA_CHOICES: dict[str, dict[str, str]] = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2"},  # default: x86-64 machines of the last decade
    "default": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"},  # no vector kernels: slow, portable
    "native": {},  # whatever the CPU offers
}
DEFAULT_ISA = "avx2"


class RuntimeSettingError(ValueError):
    """An environment variable with a value maedfer does not know."""


def portable_cpu_numerics(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set the CPU kernel variables for ``MAEDFER_CPU_ISA`` (default avx2) where unset; returns what it set."""
    env = os.environ if environ is None else environ
    choice = env.get(ISA_VARIABLE, DEFAULT_ISA).strip().lower()
    if choice not in ISA_CHOICES:
        raise RuntimeSettingError(
            f"{ISA_VARIABLE}={env[ISA_VARIABLE]!r} is not one of {', '.join(ISA_CHOICES)}; "
            f"unset it for portable AVX2 numerics or set it to 'native'"
        )
    applied = {}
    for key, value in ISA_CHOICES[choice].items():
        if key not in env:
            env[key] = value
            applied[key] = value
    return applied


def cpu_numerics() -> dict[str, str]:
    """What this process runs with: PyTorch's CPU capability and the variables that chose it (for run records)."""
    import torch

    info = {"cpu_capability": str(torch.backends.cpu.get_cpu_capability())}
    for key in (ISA_VARIABLE, "ATEN_CPU_CAPABILITY", "MKL_CBWR"):
        if key in os.environ:
            info[key] = os.environ[key]
    return info
