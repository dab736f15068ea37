#!/usr/bin/env python
"""Digests of the demo data and its shards, checked against tests/data/demo_digests.json.

    python scripts/demo_digests.py --demo data/demo --shards data/shards/demo            # check the full demo
    python scripts/demo_digests.py --demo data/demo --shards data/shards/demo --update   # record new values

The manifest's digest is the sha256 of ``manifest.json``'s bytes. An index's digest is a sha256 of its
CONTENT, not of the Parquet file (whose bytes embed the pyarrow version): one tab-separated line per clip,
sorted by clip id, of clip_id, label, label_name, subject, train_folds, test_folds, num_frames, height,
width and checksum (the sha256 of the clip's JPEG bytes), so any change to a stored frame shows. Needs
only pyarrow (no maedfer import). The TINY set's digests, and the first fine-tuning batch's, are checked
by tests/test_demo_digests.py (``python tests/test_demo_digests.py --update`` records those).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

DIGESTS = Path(__file__).resolve().parent.parent / "tests" / "data" / "demo_digests.json"
DATASETS = ("dfew", "voxceleb2")
INDEX_FIELDS = ("clip_id", "label", "label_name", "subject", "train_folds", "test_folds", "num_frames", "height",
                "width", "checksum")


def manifest_digest(manifest: Path) -> str:
    """sha256 of the demo set's manifest.json bytes."""
    return hashlib.sha256(Path(manifest).read_bytes()).hexdigest()


def index_digest(index: Path) -> str:
    """sha256 of an index's content: its clips' rows, sorted by clip id (independent of the Parquet bytes)."""
    import pyarrow.parquet as pq

    table = pq.read_table(index, columns=list(INDEX_FIELDS)).to_pylist()
    lines = sorted("\t".join(_text(row[f]) for f in INDEX_FIELDS) for row in table)
    return hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()


def _text(value: object) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def data_digests(demo: Path, shards: Path) -> dict[str, object]:
    """The manifest digest and each dataset's index content digest of a demo set and its shards."""
    return {"manifest": manifest_digest(Path(demo) / "manifest.json"),
            "index": {name: index_digest(Path(shards) / name / "index.parquet") for name in DATASETS}}


def load(path: Path = DIGESTS) -> dict:
    """The recorded digests."""
    return json.loads(Path(path).read_text())


def store(section: str, values: dict, path: Path = DIGESTS) -> None:
    """Record ``values`` as ``section`` ("tiny" or "full") of the digests file, keeping the rest."""
    data = load(path) if Path(path).is_file() else {}
    data[section] = values
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def differences(expected: dict, actual: dict, prefix: str = "") -> list[str]:
    """One line per digest that differs (or is missing) between two nested digest dicts."""
    out = []
    for key in sorted(set(expected) | set(actual)):
        a, b = expected.get(key), actual.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += differences(a, b, f"{prefix}{key}.")
        elif key in actual and a != b:
            out.append(f"{prefix}{key}: recorded {a}, now {b}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Check (or --update) the full demo's digests; exit status 1 with one line per difference."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--demo", type=Path, default=Path("data/demo"), help="demo data folder (maedfer demo-data --out)")
    p.add_argument("--shards", type=Path, default=Path("data/shards/demo"), help="folder of <dataset>/index.parquet")
    p.add_argument("--section", default="full", help="section of the digests file (full: the DAG's demo)")
    p.add_argument("--update", action="store_true", help=f"record the current digests in {DIGESTS.name}")
    args = p.parse_args(argv)
    for path in [args.demo / "manifest.json", *(args.shards / n / "index.parquet" for n in DATASETS)]:
        if not path.is_file():
            print(f"demo_digests: {path} missing; build the demo data and shards first (snakemake --cores 2 "
                  "demo_data, or the demo)", file=sys.stderr)
            return 2
    actual = data_digests(args.demo, args.shards)
    if args.update:
        store(args.section, actual)
        print(json.dumps(actual, indent=2))
        return 0
    diff = differences(load().get(args.section, {}), actual)
    if diff:
        print(f"demo_digests: the {args.section} demo data or shards differ from tests/data/{DIGESTS.name}:",
              *diff, "If the change is intended, record it: python scripts/demo_digests.py --update", sep="\n",
              file=sys.stderr)
        return 1
    print(f"[demo] digests of {args.demo}/manifest.json and the {', '.join(DATASETS)} indexes match "
          f"tests/data/{DIGESTS.name} ({args.section})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
