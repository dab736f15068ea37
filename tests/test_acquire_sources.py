"""Dataset sources: the catalogue's form (no network), and downloads, split-part joining and extraction of
archives in each owner's layout served from 127.0.0.1; gated sources' errors; credentials never written."""

from __future__ import annotations

import hashlib
import json
import shutil
import urllib.parse
from pathlib import Path

import pytest

from maedfer.data.acquire.bring import MARKER_NAME, bring, write_marker
from maedfer.data.acquire.catalogue import CATALOGUE
from maedfer.data.acquire.checksums import parse_checksum
from maedfer.data.acquire.errors import AcquireError, ChecksumError
from maedfer.data.acquire.sources import resolve_source
from maedfer.data.acquire.tools import group_files
from tests.acquire_server import Served, serve, zip_bytes


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _actor_zip(actor: int) -> bytes:
    """A RAVDESS per-actor zip: Actor_NN/ with two video-only speech clips (tiny placeholder bytes)."""
    return zip_bytes({f"Actor_{actor:02d}/02-01-0{e}-01-01-01-{actor:02d}.mp4": bytes([actor, e]) * 10
                      for e in (1, 2)})


# ------------------------------------------------------------------------------------- the catalogue (no network)
def test_catalogue_entries_have_urls_checksums_and_expected_member_names():
    for name, entry in CATALOGUE.items():
        assert entry.page.startswith("https://") and entry.licence and entry.size and entry.expect, name
        if entry.access == "request":
            assert not entry.files and "http" in entry.request, name
            continue
        assert entry.files, name
        for f in entry.files:
            assert all(urllib.parse.urlparse(u).scheme in ("http", "https") and urllib.parse.urlparse(u).netloc
                       for u in f.urls), f
            assert f.checksum is None or parse_checksum(f.checksum, f.name) is not None
            if len(f.urls) == 1 and not f.into:
                assert f.urls[0].split("?")[0].endswith(f.name), f
    ravdess = [f.name for f in CATALOGUE["ravdess"].files]
    assert ravdess == [f"Video_Speech_Actor_{a:02d}.zip" for a in range(1, 25)]
    assert all("zenodo.org/records/1188976/files/" in f.urls[0] for f in CATALOGUE["ravdess"].files)
    song = [f.name for f in CATALOGUE["ravdess_song"].files]
    assert len(song) == 23 and "Video_Song_Actor_18.zip" not in song
    vox = CATALOGUE["voxceleb2"].files
    assert [f.name for f in vox] == ["vox2_dev_mp4.zip"]
    assert [u.rsplit("/", 1)[1] for u in vox[0].urls] == [f"vox2_dev_mp4_parta{c}" for c in "abcdefghi"]
    assert CATALOGUE["voxceleb2"].credentials == ("MAEDFER_VOXCELEB2_USER", "MAEDFER_VOXCELEB2_PASSWORD")
    cremad = CATALOGUE["cremad"].files
    assert len(cremad) == 7462 and cremad[0].name == "1001_DFA_ANG_XX.flv" and cremad[0].into == "VideoFlash"
    assert CATALOGUE["enterface"].files[0].name == "project2_database.zip"


def test_bad_source_specs_are_one_line_errors():
    with pytest.raises(ValueError, match="exactly one of folder, files, catalogue"):
        resolve_source({"folder": "a", "catalogue": "ravdess"}, "ravdess", "p.yaml: datasets.ravdess.source")
    with pytest.raises(ValueError, match="no catalogue entry 'nope'"):
        resolve_source({"catalogue": "nope"}, "x", "p.yaml: datasets.x.source")
    with pytest.raises(ValueError, match=r"only: 'Video_Speech_Actor_25.zip' is not a file"):
        resolve_source({"catalogue": "ravdess", "only": ["Video_Speech_Actor_25.zip"]}, "r", "p.yaml: s")
    with pytest.raises(AcquireError, match="not md5"):
        resolve_source({"files": [{"url": "http://h/x.zip", "md5": "123"}]}, "x", "p.yaml: s")


def test_group_files_joins_byte_split_parts_and_keeps_volumes_together(tmp_path):
    names = ["vox2_dev_mp4_partaa", "vox2_dev_mp4_partab", "clips.zip.001", "clips.zip.002", "a.7z.001",
             "a.7z.002", "b.part1.rar", "b.part2.rar", "c.zip", "c.z01", "labels.tar.gz"]
    items = group_files([tmp_path / n for n in names])
    got = {name: ([p.name for p in paths], join) for name, paths, join in items}
    assert got == {
        "vox2_dev_mp4.zip": (["vox2_dev_mp4_partaa", "vox2_dev_mp4_partab"], True),
        "clips.zip": (["clips.zip.001", "clips.zip.002"], True),
        "a.7z.001": (["a.7z.001"], False), "b.part1.rar": (["b.part1.rar"], False), "c.zip": (["c.zip"], False),
        "labels.tar.gz": (["labels.tar.gz"], False),
    }


# ------------------------------------------------------------------------------------- served from 127.0.0.1
def test_ravdess_per_actor_zips_download_verify_extract_then_nothing_then_a_changed_checksum_fails(tmp_path):
    zips = {f"Video_Speech_Actor_{a:02d}.zip": _actor_zip(a) for a in (1, 2)}
    with serve(Served(files=dict(zips))) as server:
        spec = {"catalogue": "ravdess", "mirror": server.base + "/", "only": sorted(zips),
                "checksums": {"Video_Speech_Actor_01.zip": "md5:" + _md5(zips["Video_Speech_Actor_01.zip"])}}
        dest = tmp_path / "ravdess"
        resolved = resolve_source(spec, "ravdess", "p.yaml: datasets.ravdess.source")
        first = bring(resolved, dest)
        assert [(r.action, r.checked) for r in first] == [("extracted", "params"), ("extracted", "recorded now")]
        assert (dest / "Actor_01" / "02-01-01-01-01-01-01.mp4").read_bytes() == bytes([1, 1]) * 10
        assert (dest / "Actor_02" / "02-01-02-01-01-01-02.mp4").is_file()
        assert not (dest / ".downloads").exists()  # downloaded archives removed after extraction
        assert write_marker(dest, "ravdess", first)
        marker = (dest / MARKER_NAME).read_bytes()
        requests = len(server.requests)

        again = bring(resolved, dest)
        assert [r.action for r in again] == ["present", "present"] and len(server.requests) == requests
        assert not write_marker(dest, "ravdess", again) and (dest / MARKER_NAME).read_bytes() == marker

        spec["checksums"]["Video_Speech_Actor_01.zip"] = "md5:" + "0" * 32
        with pytest.raises(ChecksumError) as err:
            bring(resolve_source(spec, "ravdess", "p.yaml: s"), dest)
        assert str(err.value).startswith("Video_Speech_Actor_01.zip: md5 ") and "\n" not in str(err.value)


def test_a_recorded_checksum_verifies_a_later_download(tmp_path):
    data = _actor_zip(3)
    with serve(Served(files={"Video_Speech_Actor_03.zip": data})) as server:
        spec = {"catalogue": "ravdess", "mirror": server.base, "only": ["Video_Speech_Actor_03.zip"]}
        dest = tmp_path / "r"
        bring(resolve_source(spec, "ravdess", "s"), dest)
        shutil.rmtree(dest / "Actor_03")  # the extracted folder is gone: downloaded again and checked
        assert bring(resolve_source(spec, "ravdess", "s"), dest)[0].checked == "record"
        shutil.rmtree(dest / "Actor_03")
        server.files["Video_Speech_Actor_03.zip"] = _actor_zip(4)  # changed upstream
        with pytest.raises(ChecksumError, match="Video_Speech_Actor_03.zip: sha256 .* differs from .* recorded"):
            bring(resolve_source(spec, "ravdess", "s"), dest)


def test_voxceleb2_parts_need_credentials_are_joined_with_the_md5_of_the_whole_and_never_written(
        tmp_path, monkeypatch):
    whole = zip_bytes({"dev/mp4/id00012/abc/00001.mp4": b"v" * 500})
    cut = [whole[i:i + 200] for i in range(0, len(whole), 200)]
    parts = {f"vox2_dev_mp4_parta{c}": p for c, p in zip("abcdefghi", cut + [b""] * 9, strict=False)}
    password = "s3cret-pw"
    with serve(Served(files=parts, credentials=("alice", password))) as server:
        spec = {"catalogue": "voxceleb2", "mirror": server.base, "inbox": str(tmp_path / "inbox"),
                "checksums": {"vox2_dev_mp4.zip": "md5:" + _md5(whole)}}
        dest = tmp_path / "vox"
        monkeypatch.delenv("MAEDFER_VOXCELEB2_USER", raising=False)
        monkeypatch.delenv("MAEDFER_VOXCELEB2_PASSWORD", raising=False)
        with pytest.raises(AcquireError, match="set MAEDFER_VOXCELEB2_USER and MAEDFER_VOXCELEB2_PASSWORD"):
            bring(resolve_source(spec, "voxceleb2", "s"), dest)
        assert server.requests == []
        monkeypatch.setenv("MAEDFER_VOXCELEB2_USER", "alice")
        monkeypatch.setenv("MAEDFER_VOXCELEB2_PASSWORD", password)
        results = bring(resolve_source(spec, "voxceleb2", "s"), dest)
        assert [(r.action, r.checked) for r in results] == [("extracted", "params")]
        assert len(server.requests) == 9 and all(h and h.startswith("Basic ") for h in server.auth_headers)
        assert (dest / "dev/mp4/id00012/abc/00001.mp4").read_bytes() == b"v" * 500
        write_marker(dest, "voxceleb2", results)
        for f in dest.rglob("*"):
            if f.is_file():
                assert password.encode() not in f.read_bytes() and b"alice" not in f.read_bytes(), f


def test_voxceleb2_parts_from_the_inbox_need_no_credentials(tmp_path, monkeypatch):
    whole = zip_bytes({"dev/mp4/id00013/x/00001.mp4": b"w" * 300})
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for c, i in zip("abcdefghi", range(0, 9 * 40, 40), strict=True):
        (inbox / f"vox2_dev_mp4_parta{c}").write_bytes(whole[i:i + 40] if c != "i" else whole[i:])
    monkeypatch.delenv("MAEDFER_VOXCELEB2_USER", raising=False)
    spec = {"catalogue": "voxceleb2", "inbox": str(inbox)}
    results = bring(resolve_source(spec, "voxceleb2", "s"), tmp_path / "vox")
    assert results[0].action == "extracted" and results[0].md5 == _md5(whole)
    assert (tmp_path / "vox/dev/mp4/id00013/x/00001.mp4").is_file()


def test_gated_datasets_say_where_to_request_access_and_what_to_put_where(tmp_path):
    inbox = tmp_path / "archives" / "dfew"
    with pytest.raises(AcquireError) as err:
        resolve_source({"catalogue": "dfew", "inbox": str(inbox)}, "dfew", "s")
    message = str(err.value)
    assert "\n" not in message and "https://dfew-dataset.github.io" in message and str(inbox) in message
    assert "Clip/clip_224x224" in message
    whole = zip_bytes({"Clip/clip_224x224/00001/00001.jpg": b"j" * 50, "EmoLabel_DataSplit/x.csv": b"a,b\n"})
    inbox.mkdir(parents=True)
    (inbox / "DFEW.zip.001").write_bytes(whole[:100])
    (inbox / "DFEW.zip.002").write_bytes(whole[100:])
    results = bring(resolve_source({"catalogue": "dfew", "inbox": str(inbox)}, "dfew", "s"), tmp_path / "dfew")
    assert [(r.name, r.action) for r in results] == [("DFEW.zip", "extracted")]
    assert (tmp_path / "dfew/Clip/clip_224x224/00001/00001.jpg").is_file()


def test_a_7z_archive_without_the_tool_is_a_one_line_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    inbox = tmp_path / "mafw"
    inbox.mkdir()
    (inbox / "MAFW.7z.001").write_bytes(b"7z\xbc\xaf\x27\x1c")
    (inbox / "MAFW.7z.002").write_bytes(b"x")
    with pytest.raises(AcquireError, match=r"MAFW.7z.001: extracting it needs the `7z` command.*install p7zip"):
        bring(resolve_source({"catalogue": "mafw", "inbox": str(inbox)}, "mafw", "s"), tmp_path / "out")


def test_cremad_files_go_to_videoflash_and_names_the_owners_lack_are_listed_not_fatal(tmp_path):
    with serve(Served(files={"1001_DFA_ANG_XX.flv": b"flv1"})) as server:
        spec = {"catalogue": "cremad", "mirror": server.base, "only": ["1001_DFA_ANG_XX.flv", "1001_DFA_DIS_XX.flv"]}
        dest = tmp_path / "cremad"
        results = bring(resolve_source(spec, "cremad", "s"), dest)
        assert [r.action for r in results] == ["placed", "absent upstream"]
        assert (dest / "VideoFlash" / "1001_DFA_ANG_XX.flv").read_bytes() == b"flv1"
        write_marker(dest, "cremad", results)
        n = len(server.requests)
        again = bring(resolve_source(spec, "cremad", "s"), dest)
        assert [r.action for r in again] == ["present", "absent upstream"] and len(server.requests) == n
        assert not write_marker(dest, "cremad", again)
        assert json.loads((dest / MARKER_NAME).read_text())["items"][1] == {"absent_upstream": True,
                                                                              "name": "1001_DFA_DIS_XX.flv"}


def test_local_folder_and_local_archive_sources(tmp_path):
    src = tmp_path / "mine"
    (src / "happy").mkdir(parents=True)
    (src / "happy" / "a.mp4").write_bytes(b"a")
    results = bring(resolve_source({"folder": str(src)}, "mine", "s"), tmp_path / "root")
    assert results[0].action == "linked" and (tmp_path / "root" / "happy" / "a.mp4").read_bytes() == b"a"
    archive = tmp_path / "enterface.zip"
    archive.write_bytes(zip_bytes({"subject 1/anger/sentence 1/s1_an_1.avi": b"avi"}))
    spec = {"files": [{"path": str(archive), "md5": _md5(archive.read_bytes())}]}
    results = bring(resolve_source(spec, "enterface", "s"), tmp_path / "ent")
    assert [(r.action, r.checked) for r in results] == [("extracted", "params")]
    assert archive.exists()  # a local archive is left where it is


def test_a_gated_source_without_files_or_credentials_is_named_before_a_run(tmp_path, monkeypatch):
    from maedfer.data.acquire.sources import unmet_source

    monkeypatch.delenv("MAEDFER_VOXCELEB2_USER", raising=False)
    inbox = tmp_path / "inbox"
    line = unmet_source({"catalogue": "dfew", "inbox": str(inbox)}, tmp_path / "dfew", "dfew")
    assert "https://dfew-dataset.github.io" in line and f"{inbox}/" in line and "\n" not in line
    assert "MAEDFER_VOXCELEB2_USER" in unmet_source({"catalogue": "voxceleb2"}, tmp_path / "v", "voxceleb2")
    assert unmet_source({"catalogue": "ravdess"}, tmp_path / "r", "ravdess") is None  # public: the job downloads
    inbox.mkdir()
    (inbox / "DFEW.zip").write_bytes(b"PK")
    assert unmet_source({"catalogue": "dfew", "inbox": str(inbox)}, tmp_path / "dfew", "dfew") is None
    (tmp_path / "hand" / "Clip").mkdir(parents=True)  # a root filled by hand
    assert unmet_source({"catalogue": "mafw", "inbox": str(tmp_path / "none")}, tmp_path / "hand", "mafw") is None


def test_the_stage_uses_a_root_filled_by_hand_and_fetches_nothing(tmp_path, capsys):
    import yaml

    from pipeline.acquire import main

    root = tmp_path / "ravdess"
    (root / "Actor_01").mkdir(parents=True)
    (root / "Actor_01" / "02-01-01-01-01-01-01.mp4").write_bytes(b"mp4")
    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "params/demo.yaml").read_text())
    data["datasets"]["ravdess"] = {"adapter": "ravdess", "root": str(root), "folds": [1, 2, 3, 4, 5, 6],
                                   "source": {"catalogue": "ravdess", "mirror": "http://127.0.0.1:9/"}}
    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump(data))
    assert main(["--params", str(params), "--dataset", "ravdess", "--out", str(root)]) == 0
    assert "filled by hand" in capsys.readouterr().out and (root / MARKER_NAME).is_file()
    assert not (root / ".acquire.json").exists()  # nothing was fetched (port 9 would refuse)
