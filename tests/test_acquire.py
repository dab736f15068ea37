"""Acquisition: local folders, archives (with path-traversal refusal) and HTTP downloads with resume."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from maedfer.data.acquire import (
    MANIFEST_NAME,
    ChecksumError,
    UnsafeArchiveError,
    acquire,
    acquire_many,
    download_path,
    read_manifest,
)

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------- a local HTTP server
@dataclass
class FileServer:
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    sent: list[int] = field(default_factory=list)  # body bytes sent per request
    cut_next: int = 0  # cut this many next responses half-way (simulated dropped connection)
    ranges: bool = True  # whether Range requests are honoured
    base: str = ""

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


def _handler(state: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            name = self.path.split("?")[0].lstrip("/")
            range_header = self.headers.get("Range")
            state.requests.append((name, range_header))
            if name not in state.files:
                self.send_error(404)
                return
            data = state.files[name]
            start = int(range_header.split("=")[1].split("-")[0]) if range_header and state.ranges else 0
            if start >= len(data) and range_header:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                state.sent.append(0)
                return
            body = data[start:]
            if range_header and state.ranges:
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.cut_next > 0:
                state.cut_next -= 1
                body = body[: len(body) // 2]
            self.wfile.write(body)
            state.sent.append(len(body))

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[FileServer]:
    state = FileServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# ------------------------------------------------------------------------------------- archive builders
def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def write_tar(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None, mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return path


def ravdess_zip(actor: int) -> bytes:
    return zip_bytes({f"Actor_{actor:02d}/02-01-0{e}-01-01-01-{actor:02d}.mp4": b"v" * 100 for e in range(1, 9)})


def visible(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir() if not p.name.startswith("."))


# ------------------------------------------------------------------------------------- URL sources
def test_download_extract_manifest_and_rerun(server: FileServer, tmp_path: Path) -> None:
    data = ravdess_zip(1)
    server.files["Video_Speech_Actor_01.zip"] = data
    url = server.url("Video_Speech_Actor_01.zip") + "?download=1"
    dest = tmp_path / "ravdess"
    digest = hashlib.sha256(data).hexdigest()
    result = acquire(url, dest, sha256=digest.upper())
    assert (result.kind, result.action, result.size, result.sha256) == ("url", "downloaded", len(data), digest)
    assert result.downloaded_bytes == len(data) and result.entries == ("Actor_01",)
    assert len(list((dest / "Actor_01").glob("02-01-*.mp4"))) == 8
    assert not download_path(url, dest).exists()  # archive removed after extraction
    entry = json.loads((dest / MANIFEST_NAME).read_text())["sources"][url]
    assert (entry["url"], entry["size"], entry["sha256"]) == (url, len(data), digest) and entry["time"]
    # re-running does nothing: no request, same result
    before = len(server.requests)
    again = acquire(url, dest)
    assert again.already_present and len(server.requests) == before
    with pytest.raises(ChecksumError, match="differs from the expected"):
        acquire(url, dest, sha256="0" * 64)


def test_resume_from_partial_file_requests_only_the_rest(server: FileServer, tmp_path: Path) -> None:
    data = bytes(range(256)) * 40  # 10,240 bytes, not an archive
    server.files["labels.bin"] = data
    url, dest = server.url("labels.bin"), tmp_path / "d"
    part = download_path(url, dest).with_name(download_path(url, dest).name + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:3000])
    result = acquire(url, dest, sha256=hashlib.sha256(data).hexdigest())
    assert server.requests == [("labels.bin", "bytes=3000-")]
    assert server.sent == [len(data) - 3000] and result.downloaded_bytes == len(data) - 3000
    assert (dest / "labels.bin").read_bytes() == data and result.entries == ("labels.bin",)
    assert not part.exists()


def test_dropped_connection_is_resumed(server: FileServer, tmp_path: Path) -> None:
    data = os.urandom(50_000)
    server.files["big.bin"] = data
    server.cut_next = 1
    result = acquire(server.url("big.bin"), tmp_path / "d")
    assert [r[1] for r in server.requests] == [None, "bytes=25000-"]
    assert (tmp_path / "d" / "big.bin").read_bytes() == data and result.downloaded_bytes == len(data)


def test_server_without_range_support_restarts(server: FileServer, tmp_path: Path) -> None:
    data = os.urandom(5000)
    server.files["f.bin"] = data
    server.ranges = False
    url, dest = server.url("f.bin"), tmp_path / "d"
    part = download_path(url, dest).with_name(download_path(url, dest).name + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage-garbage")
    acquire(url, dest)
    assert (dest / "f.bin").read_bytes() == data


def test_checksum_mismatch(server: FileServer, tmp_path: Path) -> None:
    server.files["a.zip"] = zip_bytes({"x/y.txt": b"hello"})
    url, dest = server.url("a.zip"), tmp_path / "d"
    with pytest.raises(ChecksumError, match=r"a\.zip.*sha256 mismatch: expected 0{64}, got [0-9a-f]{64}"):
        acquire(url, dest, sha256="0" * 64)
    assert not (dest / "x").exists() and url not in read_manifest(dest)["sources"]
    # the download is kept: a run with the right checksum does not fetch it again
    n = len(server.requests)
    acquire(url, dest, sha256=hashlib.sha256(server.files["a.zip"]).hexdigest())
    assert len(server.requests) == n and (dest / "x" / "y.txt").read_text() == "hello"


def test_http_error_and_bad_sha(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"missing\.zip: HTTP 404"):
        acquire(server.url("missing.zip"), tmp_path / "d")
    with pytest.raises(ValueError, match="not 64 hexadecimal digits"):
        acquire(server.url("x.zip"), tmp_path / "d", sha256="abc")


def test_unreachable_server_gives_one_line_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ValueError, match=r"x\.zip: download interrupted .*run again to resume") as info:
        acquire(f"http://127.0.0.1:{port}/x.zip", tmp_path / "d", retries=1, timeout=5)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------- archives
@pytest.mark.parametrize(
    "member, reason",
    [("../evil.txt", "escapes"), ("ok/../../evil.txt", "escapes"), ("/tmp/evil.txt", "absolute")],
)
def test_zip_path_traversal_refused(tmp_path: Path, member: str, reason: str) -> None:
    archive = tmp_path / "bad.zip"
    archive.write_bytes(zip_bytes({"Actor_01/a.mp4": b"fine", member: b"evil"}))
    dest = tmp_path / "out" / "d"
    with pytest.raises(UnsafeArchiveError, match=rf"bad\.zip: refusing member '{member}': .*{reason}"):
        acquire(str(archive), dest)
    assert visible(dest) == [] and not (tmp_path / "out" / "evil.txt").exists()
    assert [p.name for p in dest.iterdir() if p.name.startswith(".extract")] == []


@pytest.mark.parametrize(
    "members, links, reason",
    [
        ({"ok.txt": b"1", "../../evil.txt": b"2"}, None, "escapes"),
        ({"ok.txt": b"1", "/etc/evil.txt": b"2"}, None, "absolute"),
        ({"ok.txt": b"1"}, {"sub/link": "../../outside"}, "points outside"),
        ({"ok.txt": b"1"}, {"link": "/etc/passwd"}, "absolute"),
    ],
)
def test_tar_path_traversal_and_links_refused(tmp_path: Path, members: dict, links: dict | None, reason: str) -> None:
    archive = write_tar(tmp_path / "bad.tar.gz", members, links, mode="w:gz")
    dest = tmp_path / "d"
    with pytest.raises(UnsafeArchiveError, match=rf"bad\.tar\.gz: refusing member .*{reason}"):
        acquire(str(archive), dest)
    assert visible(dest) == [] and not (tmp_path / "evil.txt").exists()


def test_tar_with_inner_link_and_several_zips(tmp_path: Path) -> None:
    archive = write_tar(
        tmp_path / "splits.tar", {"split/set_1/train.txt": b"00001.mp4 anger\n"}, {"split/cur": "set_1"}
    )
    dest = tmp_path / "d"
    result = acquire(str(archive), dest)
    assert (result.kind, result.action, result.entries) == ("archive", "extracted", ("split",))
    assert (dest / "split" / "cur" / "train.txt").read_text() == "00001.mp4 anger\n"
    # several archives merge into one folder (RAVDESS: one zip per actor)
    zips = []
    for actor in (1, 2):
        zips.append(tmp_path / f"Video_Speech_Actor_{actor:02d}.zip")
        zips[-1].write_bytes(ravdess_zip(actor))
    results = acquire_many([str(z) for z in zips], tmp_path / "r")
    assert [r.action for r in results] == ["extracted", "extracted"]
    assert visible(tmp_path / "r") == ["Actor_01", "Actor_02"]
    assert [r.action for r in acquire_many([str(z) for z in zips], tmp_path / "r")] == ["present", "present"]


def test_interrupted_extraction_leftovers_are_removed(tmp_path: Path) -> None:
    dest = tmp_path / "d"
    (dest / ".extract-abc123" / "Actor_01").mkdir(parents=True)  # as a killed run would leave it
    archive = tmp_path / "a.zip"
    archive.write_bytes(ravdess_zip(3))
    acquire(str(archive), dest)
    assert sorted(p.name for p in dest.iterdir()) == [".acquire.json", ".acquire.lock", "Actor_03"]


# ------------------------------------------------------------------------------------- local folders
def test_folder_source_symlink_and_copy(tmp_path: Path) -> None:
    src = tmp_path / "DFEW"
    (src / "Clip" / "clip_224x224" / "00001").mkdir(parents=True)
    (src / "Clip" / "clip_224x224" / "00001" / "1.jpg").write_bytes(b"j")
    (src / "EmoLabel_DataSplit").mkdir()
    linked = acquire(str(src), tmp_path / "linked")
    assert (linked.kind, linked.action, linked.entries) == ("folder", "linked", ("Clip", "EmoLabel_DataSplit"))
    assert (tmp_path / "linked" / "Clip").is_symlink()
    assert (tmp_path / "linked" / "Clip" / "clip_224x224" / "00001" / "1.jpg").read_bytes() == b"j"
    copied = acquire(str(src), tmp_path / "copied", copy=True)
    assert copied.action == "copied" and not (tmp_path / "copied" / "Clip").is_symlink()
    assert (tmp_path / "copied" / "Clip" / "clip_224x224" / "00001" / "1.jpg").read_bytes() == b"j"
    assert acquire(str(src), tmp_path / "copied", copy=True).already_present
    with pytest.raises(ValueError, match="no such file or folder"):
        acquire(str(tmp_path / "nothing"), tmp_path / "x")
    with pytest.raises(ValueError, match="applies to files and archives"):
        acquire(str(src), tmp_path / "y", sha256="a" * 64)


# ------------------------------------------------------------------------------------- CLI
def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.acquire", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "MAEDFER_LOGLEVEL": "WARNING"},
        timeout=60,
    )


def test_cli(server: FileServer, tmp_path: Path) -> None:
    for actor in (1, 2):
        server.files[f"Video_Speech_Actor_{actor:02d}.zip"] = ravdess_zip(actor)
    urls = [server.url(f"Video_Speech_Actor_{a:02d}.zip") for a in (1, 2)]
    dest = tmp_path / "ravdess"
    ok = run_cli("--dataset", "ravdess", "--source", urls[0], "--source", urls[1], "--dest", str(dest))
    assert ok.returncode == 0, ok.stderr
    size = sum(len(server.files[f"Video_Speech_Actor_{a:02d}.zip"]) for a in (1, 2)) / 1000
    summary = f"ravdess: 2 source(s) -> {dest}: 2 downloaded; downloaded {size:.1f} KB; layout ok"
    assert ok.stdout.splitlines() == [summary]
    again = run_cli("--dataset", "ravdess", "--source", urls[0], "--source", urls[1], "--dest", str(dest))
    assert again.stdout.strip() == f"ravdess: 2 source(s) -> {dest}: 2 present; layout ok"
    bad = run_cli("--dataset", "ravdess", "--source", str(tmp_path / "missing.zip"), "--dest", str(dest))
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip().count("\n") == 0 and "missing.zip: no such file or folder" in bad.stderr
    wrong = run_cli("--dataset", "dfew", "--source", urls[0], "--dest", str(tmp_path / "dfew"))
    assert wrong.returncode == 2 and "layout check failed" in wrong.stderr and "DFEW" in wrong.stderr
    counts = run_cli("--dataset", "ravdess", "--source", urls[0], "--sha256", "a" * 64, "--sha256", "b" * 64,
                     "--dest", str(dest))  # fmt: skip
    assert counts.returncode == 2 and "2 sha256 values for 1 sources" in counts.stderr
