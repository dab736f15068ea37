"""Stage commands of the maedfer DAG: ``python -m pipeline.<stage>`` from the repository root.

Importing the package first pins portable CPU numerics (:mod:`maedfer.runtime`: PyTorch's and MKL's AVX2
kernels unless ``MAEDFER_CPU_ISA=native``), before any stage module runs a tensor operation, so that a
stage gives the same floats on every x86-64 machine with AVX2.
"""

import sys as _sys

from maedfer.runtime import RuntimeSettingError as _RuntimeSettingError
from maedfer.runtime import portable_cpu_numerics as _portable_cpu_numerics

try:
    _portable_cpu_numerics()
except _RuntimeSettingError as _exc:
    _sys.stderr.write(f"maedfer: error: {_exc}\n")
    raise SystemExit(2) from None
