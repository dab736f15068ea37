"""Reliability (issue 15): archive link chains, output-folder locks, verified shards, early errors, file modes."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml

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


# ------------------------------------------------------------------------------ output-folder locks (item 3)
REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def lock_holder(folder: Path) -> Iterator[subprocess.Popen]:
    """Another process holding ``folder``'s lock (as a running ingest or fine-tuning would)."""
    code = ("import sys, time\nfrom maedfer.locks import hold_output\n"
            "with hold_output(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_second_ingest_into_a_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from pipeline import ingest as stage

    out = tmp_path / "shards"
    (out / "shards").mkdir(parents=True)
    (out / "shards" / ".shard-00000.parquet.abcd1234.parquet").write_bytes(b"the first run's open shard")
    argv = ["--dataset", "cremad", "--root", str(tmp_path / "nowhere"), "--out", str(out)]
    with lock_holder(out) as holder:
        assert stage.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"ingest: error: {out}: another ingest is writing this folder")
        assert f"pid {holder.pid} on host {socket.gethostname()}" in err
        assert (out / "shards" / ".shard-00000.parquet.abcd1234.parquet").read_bytes() == b"the first run's open shard"
    # the holder died (kill -9): its lock went with it, the next run goes ahead (here: to the missing root)
    assert stage.main(argv) == 2
    err = capsys.readouterr().err
    assert "another ingest" not in err and "nowhere" in err and not (out / ".lock").exists()


def test_second_finetuning_of_a_fold_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from pipeline import finetune as stage

    out = tmp_path / "fold1"
    (out / "checkpoints").mkdir(parents=True)
    first = {out / "checkpoints" / "checkpoint-00000004.pt": b"weights", out / "metrics.json": b"{}"}
    for path, data in first.items():
        path.write_bytes(data)
    stamps = {p: p.stat().st_mtime_ns for p in first}
    argv = ["--dataset", "toy", "--index", str(tmp_path / "none.parquet"), "--fold", "1", "--out", str(out),
            "--no-tracking"]
    with lock_holder(out) as holder:
        assert stage.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{out}: another finetune is writing this folder (pid {holder.pid}" in err
    assert {p: p.read_bytes() for p in first} == first and {p: p.stat().st_mtime_ns for p in first} == stamps
    assert stage.main(argv) == 2 and "index not found" in capsys.readouterr().err


def test_lock_is_per_folder_and_released(tmp_path: Path) -> None:
    from maedfer.locks import OutputLockedError, hold_output

    with hold_output(tmp_path / "a") as a, hold_output(tmp_path / "b"):
        assert (a / ".lock").read_text().startswith(f"pid {os.getpid()} on host ")
        with pytest.raises(OutputLockedError, match="another run is writing"), hold_output(tmp_path / "a"):
            pass
    with hold_output(tmp_path / "a"):
        pass
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == []


# ---------------------------------------------------------------- unwritable / full output (item 6)
def _unshare_ok() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


needs_unshare = pytest.mark.skipif(not _unshare_ok(), reason="needs unshare -rm (a user + mount namespace)")


@needs_unshare
def test_read_only_output_is_one_line_at_start(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    (ro / "out").mkdir(parents=True)
    cmd = (f"mount --bind {ro} {ro} && mount -o remount,ro,bind {ro} && exec {sys.executable} -m pipeline.finetune "
           f"--dataset toy --index {tmp_path / 'none.parquet'} --fold 1 --out {ro / 'out'} --no-tracking")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", cmd], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"finetune: error: {ro / 'out'}") and "EROFS" in done.stderr, done.stderr


@needs_unshare
def test_full_disk_is_one_line_with_the_bytes_needed(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    code = (
        "import sys, torch\nfrom maedfer.io_utils import WriteError, save_torch_atomic, write_text_atomic\n"
        "for write in (lambda p: save_torch_atomic({'w': torch.zeros(100_000)}, p),\n"
        "              lambda p: write_text_atomic(p, 'x' * 200_000)):\n"
        "    try:\n        write(sys.argv[1] + '/model.pt')\n"
        "    except WriteError as exc:\n        print(exc)\n"
        "import os\nprint(sorted(os.listdir(sys.argv[1])))\n"
    )
    cmd = f"mount -t tmpfs -o size=64k none {mnt} && exec {sys.executable} -c \"$0\" {mnt}"
    done = subprocess.run(["unshare", "-rm", "sh", "-c", cmd, code], cwd=REPO, capture_output=True, text=True)
    lines = done.stdout.splitlines()
    assert done.returncode == 0 and len(lines) == 3, done.stdout + done.stderr
    assert lines[0].startswith(f"{mnt}/model.pt: cannot write: disk full (400.0 KB needed, ") and "free" in lines[0]
    assert lines[1].startswith(f"{mnt}/model.pt: cannot write: disk full (200.0 KB needed, ")
    assert lines[2] == "[]"  # no temporary file left behind


# ---------------------------------------------------------------- housekeeping (item 8)
def test_atomic_files_get_the_umask_mode(tmp_path: Path) -> None:
    from maedfer.io_utils import save_torch_atomic, write_text_atomic

    old = os.umask(0o002)
    try:
        write_text_atomic(tmp_path / "a.json", "{}")
        save_torch_atomic({"w": torch.zeros(2)}, tmp_path / "m.pt")
        os.umask(0o027)
        write_text_atomic(tmp_path / "b.json", "{}")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"a.json": 0o664, "m.pt": 0o664, "b.json": 0o640}


def test_temporaries_of_a_killed_checkpoint_write_are_removed(tmp_path: Path) -> None:
    from maedfer.train.checkpoint import resume_or_restart

    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    stale = [ckpt / ".checkpoint-00000008.pt.k3x_9a0b.pt", ckpt / ".checkpoint-last.pt.zz0011aa.pt"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    (ckpt / ".keep").write_text("not ours")
    assert resume_or_restart(ckpt, {}) is None
    assert sorted(p.name for p in ckpt.iterdir()) == [".keep"]


# ---------------------------------------------------------------- verified shards (item 4)
def _flip_a_jpeg_byte(shard: Path, row: int) -> None:
    from maedfer.data.shards import read_clip_frames

    frame = read_clip_frames(shard, row)[2]
    start = pq.ParquetFile(shard).metadata.row_group(row).column(1).data_page_offset  # this clip's frames
    data = bytearray(shard.read_bytes())
    at = data.find(frame, start) + len(frame) // 2
    assert at > start
    data[at] ^= 0x5A
    shard.write_bytes(bytes(data))


def test_flipped_shard_byte_is_named_and_reingest_rewrites_only_that_clip(tmp_path: Path, capsys) -> None:
    from maedfer.data.datasets import PretrainDataset
    from maedfer.data.shards import ShardChecksumError, read_index, verify_index
    from pipeline._stage import run_stage
    from tests.test_ingest import make_dataset
    from tests.test_ingest import run as ingest

    root, out = tmp_path / "root", tmp_path / "out"
    records = make_dataset(root)
    assert ingest(records, root, out).written == 7
    table = read_index(out / "index.parquet")
    ids, shards, rows = (table.column(c).to_pylist() for c in ("clip_id", "shard", "row"))
    bad = ids.index("v3")
    _flip_a_jpeg_byte(out / shards[bad], rows[bad])

    ds = PretrainDataset(out / "index.parquet")
    ds.read_frames(0, np.arange(4))  # intact clips read as before
    with pytest.raises(ShardChecksumError, match=rf"{shards[bad]}: clip 'v3' \(row {rows[bad]}\) does not match"):
        ds.read_frames(bad, np.arange(4))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(ds, [bad]), num_workers=1,
                                         collate_fn=lambda b: b)
    args = argparse.Namespace(verbose=0)
    assert run_stage("pretrain", lambda _: list(loader), args) == 2  # from a worker: still one line
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pretrain: error: {out / shards[bad]}: clip 'v3' (row"), err

    again = ingest(records, root, out)
    assert (again.written, again.reused) == (1, 6)
    table = read_index(out / "index.parquet")
    assert table.column("shard").to_pylist()[bad] != shards[bad]  # v3 written again, into a new shard
    assert [s for i, s in enumerate(table.column("shard").to_pylist()) if i != bad] == shards[:bad] + shards[bad + 1:]
    assert verify_index(out / "index.parquet") == 7
    assert ingest(records, root, out).written == 0  # and it stays fixed


# ---------------------------------------------------------------- settings fail early (item 5)
def _demo_params(tmp_path: Path, change: Callable[[dict], None]) -> Path:
    data = yaml.safe_load((REPO / "params" / "demo.yaml").read_text())
    change(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _set(*keys: str, value: object) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        node = data
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return change


@pytest.mark.parametrize(
    "change, message",
    [
        (_set("finetune", "defaults", "base_lr", value=-1e-3), "finetune.defaults.base_lr: -0.001 must be > 0"),
        (_set("pretrain", "runs", "mae_dfer", value={"base_lr": -1.0}), "pretrain.runs.mae_dfer.base_lr: -1.0 must"),
        (_set("datasets", "dfew", "folds", value=[1, 2, 3, 4, 5, 9]), "datasets.dfew.folds: [9] are not folds of dfew"),
        (_set("pretrain", "defaults", "arch_kwargs", "mask_ratio", value=1.0),
         "pretrain.defaults.arch_kwargs.mask_ratio: 1.0 must be in [0, 1)"),
        (_set("finetune", "defaults", "head_init_scale", value=0.0),
         "finetune.defaults.head_init_scale: 0.0 must be > 0"),
    ],
)
def test_bad_recipe_values_fail_when_the_params_file_loads(tmp_path: Path, change, message: str) -> None:
    from maedfer.workflow.profile import ParamsError, load_profile

    path = _demo_params(tmp_path, change)
    with pytest.raises(ParamsError) as info:
        load_profile(path)
    assert str(info.value).startswith(f"{path}: {message}"), str(info.value)


def test_workflow_check_builds_every_model(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from maedfer.commands.workflow import run

    path = _demo_params(tmp_path, _set("finetune", "experiments", "mae_dfer", "arch_kwargs",
                                       value={"region_size": [4, 4, 3]}))
    assert run(argparse.Namespace(action="check", params=[str(path)])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{path}: finetune.experiments.mae_dfer on datasets.dfew " in err
    assert "(finetune.experiments.mae_dfer.arch_kwargs)" in err and "does not tile the 4x6x6 token grid" in err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--arch-kwargs", '{"nosuch": 1}'], "--arch-kwargs: model lgi_former_test with arch_kwargs {'nosuch': 1} "
                                             "cannot be built: "),
        (["--arch-kwargs", "{nosuch"], "--arch-kwargs: not valid JSON"),
        (["--arch-kwargs", '{"region_size": [2, 3, 5]}'], "--arch-kwargs: model lgi_former_test"),
        (["--base-lr", "-1"], "--base-lr: -1.0 must be > 0"),
        (["--head-init-scale", "-1"], "--head-init-scale: -1.0 must be > 0"),
    ],
)
def test_bad_flags_fail_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture, flags: list[str],
                                        message: str) -> None:
    from pipeline import finetune as stage

    argv = ["--dataset", "toy", "--index", str(tmp_path / "none.parquet"), "--fold", "1", "--out",
            str(tmp_path / "o"), "--arch", "lgi_former_test", "--no-tracking", *flags]
    assert stage.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"finetune: error: {message}"), err


def test_snakemake_stops_on_a_model_that_cannot_be_built_before_any_job(tmp_path: Path) -> None:
    def change(data: dict) -> None:  # a profile of its own, writing only under tmp_path if a job ever started
        data["finetune"]["experiments"]["mae_dfer"]["arch_kwargs"] = {"region_size": [4, 4, 3]}
        data["profile"], data["demo_data"]["out"] = "badcheck", str(tmp_path / "data")
        data["paths"] = {k: str(tmp_path / k) for k in ("shards", "runs", "results")}
        for spec in data["datasets"].values():
            spec["root"] = spec["root"].replace("data/demo", str(tmp_path / "data"))

    path = _demo_params(tmp_path, change)
    cmd = [str(Path(sys.executable).parent / "snakemake"), "--cores", "1", "--nolock", "--config",
           f"demo_params={path}", f"logs={tmp_path / 'logs'}", "--", "demo"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # jobs started (the check is missing): stop snakemake and its jobs
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0 and "model setting(s) cannot be built; nothing was run" in out, out
    assert "does not tile the 4x6x6 token grid" in out and not (tmp_path / "data").exists()
