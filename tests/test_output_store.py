"""Stored outputs: whole when small, a fixed sample when large; differences found."""

import math

import numpy as np
import torch

from tests.helpers import read_rows
from torchparity._core import output_store
from torchparity._core.rundir import RunDir


def test_small_leaf_is_stored_whole_and_round_trips(tmp_path):
    a = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    idx = torch.tensor([1, 2, 3])
    path = RunDir(tmp_path).save_outputs("c|cpu|fp32|eager", [".a", ".idx"], [a, idx])
    assert "|" not in path.name
    leaves = output_store.load(path)
    assert [x.name for x in leaves] == [".a", ".idx"]
    assert leaves[0].whole and leaves[0].shape == [3, 4] and leaves[0].dtype == "torch.float32"
    np.testing.assert_array_equal(leaves[0].values, np.arange(12, dtype=np.float64))
    assert leaves[0].stats["max"] == 11.0 and leaves[0].stats["nan"] == 0


def test_large_leaf_is_a_fixed_sample_the_same_for_equal_sizes(tmp_path):
    big = torch.linspace(-1, 1, 10_000, dtype=torch.float64).to(torch.bfloat16)
    first = output_store.load(output_store.save(tmp_path / "a.npz", "x", ["out"], [big]))[0]
    second = output_store.load(output_store.save(tmp_path / "b.npz", "x", ["out"], [big * 2]))[0]
    assert not first.whole
    assert len(first.positions) == output_store.SAMPLE_SIZE
    assert first.positions[0] == 0 and first.positions[-1] == 9_999
    np.testing.assert_array_equal(first.positions, second.positions)
    assert first.stats["min"] == -1.0 and first.stats["max"] == 1.0  # over the whole tensor


def test_difference_finds_the_perturbed_element(tmp_path):
    base = torch.zeros(2, 8)
    moved = base.clone()
    moved[1, 3] = 0.25
    a = output_store.load(output_store.save(tmp_path / "a.npz", "x", ["out"], [base]))
    b = output_store.load(output_store.save(tmp_path / "b.npz", "x", ["out"], [moved]))
    diff = output_store.difference(a, b)
    assert diff.comparable and not diff.sampled
    assert diff.max_abs_diff == 0.25 and diff.leaf == "out"
    assert output_store.difference(a, a).max_abs_diff == 0.0


def test_nan_on_one_side_only_is_an_infinite_difference(tmp_path):
    x = torch.tensor([1.0, float("nan")])
    y = torch.tensor([1.0, 2.0])
    a = output_store.load(output_store.save(tmp_path / "a.npz", "x", ["out"], [x]))
    b = output_store.load(output_store.save(tmp_path / "b.npz", "x", ["out"], [y]))
    assert math.isinf(output_store.difference(a, b).max_abs_diff)
    assert output_store.difference(a, a).max_abs_diff == 0.0  # NaN where NaN is expected


def test_shape_mismatch_is_not_comparable(tmp_path):
    a = output_store.load(output_store.save(tmp_path / "a.npz", "x", ["out"], [torch.zeros(4)]))
    b = output_store.load(output_store.save(tmp_path / "b.npz", "x", ["out"], [torch.zeros(5)]))
    diff = output_store.difference(a, b)
    assert not diff.comparable and "shape" in diff.note


def test_storing_never_raises_into_the_row(tmp_path, cli, tiny_cases):
    # outputs/ is a file: the cells still pass, each row says why nothing was stored
    out = tmp_path / "run"
    out.mkdir()
    (out / "outputs").write_text("not a directory")
    proc = cli(
        "run",
        "--case-file",
        str(tiny_cases),
        "--suite",
        "tiny",
        "--case",
        "tiny_linear",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--min-time",
        "0.01",
        "--no-isolate",
        "--quiet",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    row = read_rows(out)[0]
    assert row["status"] == "pass" and "output_store_error" in row and "output_file" not in row
