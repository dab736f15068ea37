"""The speed benchmark runs end to end on CPU with tiny models (it prints numbers; nothing is timed here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


@pytest.mark.slow
def test_speed_table_has_every_row(capsys):
    import speed

    assert speed.main(["--models", "lgi_former_test", "--batch-size", "2", "--steps", "1", "--warmup", "1",
                       "--workers", "0", "--data-paths", "cpu", "device"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| pre") or line.startswith("| fine")]
    measured = ["model", "loader (cpu)", "end to end (cpu)", "loader (device)", "end to end (device)"]
    assert [r.split("|")[3].strip() for r in rows] == measured * 2
    assert all(float(r.split("|")[4]) > 0 for r in rows)


def test_kernel_count_counts_more_ops_per_block_for_lgi_than_vit(capsys):
    import kernel_count

    assert kernel_count.main(["--models", "lgi_former_test", "vit_test"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    per_block = {name: float(cols[-1]) for name, cols in rows.items()}
    assert per_block["lgi_former_test"] > per_block["vit_test"] > 0  # three attentions per block vs one
