"""The Snakefile and dvc.yaml parse and describe the same stages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_snakefile_dry_run():
    out = _run(str(BIN / "snakemake"), "-n", "--forceall", "--cores", "1", "all")
    assert "model_stats" in out


def test_dvc_stages_parse():
    out = _run(str(BIN / "dvc"), "stage", "list")
    assert "model_stats" in out
