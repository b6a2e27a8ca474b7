"""Scale-out: the shards of a run, merged by `report`, reproduce the unsharded run."""

from __future__ import annotations

import pandas as pd
import pytest

CELL = ["case", "kind", "suite", "device", "precision", "backend"]
# Timings differ from run to run; the verdicts and the outputs' bits must not.
SAME = CELL + ["status", "output_digest"]


def _run(cli, tiny_cases, out, *extra: str) -> None:
    proc = cli(
        "run",
        "--case-file",
        str(tiny_cases),
        "--suite",
        "tiny",
        "--device",
        "cpu",
        "--out",
        str(out),
        "--quiet",
        "--min-time",
        "0.01",
        *extra,
    )
    assert proc.returncode == 0, proc.stderr


def _table(path) -> pd.DataFrame:
    frame = pd.read_csv(path / "results.csv")
    return frame[SAME].sort_values(CELL).reset_index(drop=True)


@pytest.mark.slow  # runs the matrix twice; test_cli covers the shards' union by default
def test_merged_shards_reproduce_the_unsharded_results(cli, tiny_cases, tmp_path):
    whole, s1, s2, merged = (tmp_path / n for n in ("whole", "s1", "s2", "merged"))
    _run(cli, tiny_cases, whole)  # in a spawned worker; the shards in-process (faster):
    _run(cli, tiny_cases, s1, "--shard", "1/2", "--no-isolate")  # the bits must not care
    _run(cli, tiny_cases, s2, "--shard", "2/2", "--no-isolate")
    proc = cli("report", str(s1), str(s2), "--out", str(merged))
    assert proc.returncode == 0, proc.stderr

    shard_cells = [set(map(tuple, _table(s)[CELL].values.tolist())) for s in (s1, s2)]
    assert shard_cells[0] and shard_cells[1] and not shard_cells[0] & shard_cells[1]

    expected, got = _table(whole), _table(merged)
    assert len(expected) == 2 * 4  # 2 cases x 4 precisions on cpu, one row each
    assert set(expected.status) == {"pass"} and expected.output_digest.notna().all()
    pd.testing.assert_frame_equal(got, expected)
