"""Reliability (issue 15): archive link chains, output-folder locks, verified shards, early errors, file modes."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from maedfer.data.acquire import UnsafeArchiveError, acquire


def _zip_with_links(path: Path, files: dict[str, bytes], links: list[tuple[str, str]]) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.parametrize(
    "links",
    [
        [("a/b", ".."), ("a/b/c", "../..")],  # each string stays inside; the second resolves through the first
        [("x", "a/y/../.."), ("a/y", ".")],  # a later link changes where an earlier one leads
    ],
)
def test_zip_symlink_chain_refused(tmp_path: Path, links: list[tuple[str, str]]) -> None:
    archive = _zip_with_links(tmp_path / "chain.zip", {"ok.txt": b"1"}, links)
    dest = tmp_path / "out" / "d"
    with pytest.raises(UnsafeArchiveError, match=r"chain\.zip: refusing member .*resolves outside the target"):
        acquire(str(archive), dest)
    assert [p.name for p in dest.iterdir() if not p.name.startswith(".")] == []
    assert not (tmp_path / "out" / "c").exists()


def test_zip_inner_link_kept(tmp_path: Path) -> None:
    archive = _zip_with_links(tmp_path / "ok.zip", {"split/set_1/train.txt": b"x\n"}, [("split/cur", "set_1")])
    acquire(str(archive), tmp_path / "d")
    assert (tmp_path / "d" / "split" / "cur" / "train.txt").read_text() == "x\n"
