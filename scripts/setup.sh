#!/usr/bin/env bash
# One-command install: system packages (ffmpeg) when missing, then a virtual
# environment in .venv with maedfer (editable) and its pinned dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if ! command -v ffmpeg >/dev/null 2>&1; then
  echo "[setup] installing ffmpeg (Debian/Ubuntu package)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ffmpeg >/dev/null
fi

# Debian's chromium and chromium-driver for the app's browser test (tests/test_app.py drives maedfer app with
# them; about 25 s and 370 MB here). MAEDFER_NO_BROWSER=1 skips them: that test then skips, saying why.
if [ "${MAEDFER_NO_BROWSER:-0}" != "1" ] && ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing chromium and chromium-driver (Debian packages) for the app's browser test"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver \
        >/dev/null; } || echo "[setup] warning: chromium was not installed; tests/test_app.py will skip its browser test"
  else
    echo "[setup] no apt-get: install chromium and chromedriver to run tests/test_app.py's browser test"
  fi
fi

"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "maedfer needs Python 3.11+"'
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -c envs/constraints.txt -e ".[dev,slurm]"
.venv/bin/python -m pip check
.venv/bin/maedfer --version
echo "[setup] done: activate with 'source .venv/bin/activate'"
