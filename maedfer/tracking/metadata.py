"""What a maedfer run says about itself: the tag names, the caller's run tags and the code's git state."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

PARENT_RUN_TAG = "mlflow.parentRunId"
GROUP_TAG = "maedfer.group"
ROLE_TAG = "maedfer.role"

_PACKAGE_DIR = Path(__file__).resolve().parent


def git_commit(path: str | Path | None = None) -> str | None:
    """``git rev-parse HEAD`` of the repository holding ``path`` (default: this package), or None."""
    cwd = Path(path) if path is not None else _PACKAGE_DIR
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def git_dirty(path: str | Path | None = None) -> bool | None:
    """True when tracked files have uncommitted changes; None without git."""
    cwd = Path(path) if path is not None else _PACKAGE_DIR
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def run_tags(
    dataset: str | None = None, fold: int | str | None = None, index_checksum: str | None = None, **extra: Any
) -> dict[str, str]:
    """The tags every maedfer run carries (whatever the caller knows), under fixed names."""
    tags = {"dataset": dataset, "fold": fold, "index_checksum": index_checksum, **extra}
    return {k: str(v) for k, v in tags.items() if v is not None}


def code_tags() -> dict[str, str]:
    """Tags naming the code that runs: source script, host, git commit and whether the tree is dirty."""
    tags = {
        "mlflow.source.name": Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python",
        "host": socket.gethostname(),
    }
    commit = git_commit()
    if commit:
        tags["git_commit"] = commit
        tags["mlflow.source.git.commit"] = commit
        dirty = git_dirty()
        if dirty is not None:
            tags["git_dirty"] = str(dirty).lower()
    return tags
