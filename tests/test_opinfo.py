"""The opinfo suite through the command line: OpInfo entries as multi-sample
op cells, the guarded private API (a skip row, never a crash), and the
sample-to-code translation that lets one module script, export and compile."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers import TIMING_STATISTICS, expected_timing, read_rows
from torchparity.suites.opinfo import calls

PLUGIN = ("--plugin", "torchparity.suites.opinfo")  # also an entry point once installed


def _run(cli, out: Path, *args: str, suite: str = "opinfo"):
    return cli(
        "run",
        *PLUGIN,
        "--suite",
        suite,
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--min-time",
        "0.005",
        "--quiet",
        "--out",
        str(out),
        *args,
    )


@pytest.fixture
def fake_opinfo(monkeypatch):
    """Point the guard at a module whose op_db lacks the attributes the suite reads."""
    monkeypatch.setenv("TORCHPARITY_OPINFO_MODULE", "tests.data.fake_opinfo")


@pytest.mark.slow
def test_cells_run_every_sample_through_eager_torchscript_onnxruntime(cli, tmp_path: Path) -> None:
    pytest.importorskip("expecttest")
    proc = _run(
        cli,
        tmp_path / "run",
        "--case",
        "opinfo.add",
        "--case",
        "opinfo.bitwise_and",
        "--backend",
        "eager,torchscript,onnxruntime",
    )
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(tmp_path / "run")
    assert {(r["case"], r["backend"]) for r in rows} == {
        (c, b)
        for c in ("opinfo.add", "opinfo.bitwise_and")
        for b in ("eager", "torchscript", "onnxruntime")
    }
    for r in rows:
        assert r["kind"] == "op" and r["suite"] == "opinfo" and r["samples"] > 1
        if r["backend"] == "onnxruntime" and r["status"] != "pass":
            assert r["blame"], r  # whatever ORT does on this torch, the row says whom to blame
            continue
        assert r["status"] == "pass", r
        assert r["samples_pass"] == r["samples"] - r["samples_invalid"]


@pytest.mark.slow
def test_an_op_returning_a_python_bool_compares_through_torchscript(cli, tmp_path: Path) -> None:
    """A scripted allclose returns a bool, not a tensor: it counts as eager's 0-d tensor does."""
    pytest.importorskip("expecttest")
    proc = _run(
        cli, tmp_path / "run", "--case", "opinfo.allclose", "--backend", "eager,torchscript"
    )
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(tmp_path / "run")
    assert {r["backend"]: r["status"] for r in rows} == {"eager": "pass", "torchscript": "pass"}
    for row in rows:  # a multi-sample cell's timing columns are its samples' statistics
        assert {k: row[k] for k in TIMING_STATISTICS} == pytest.approx(expected_timing(row))


@pytest.mark.slow
def test_the_sampled_selection_caps_samples_per_cell(cli, tmp_path: Path) -> None:
    """max_pool1d has 864 samples at fp32; opinfo-sampled runs its first 16."""
    pytest.importorskip("expecttest")
    proc = _run(
        cli,
        tmp_path / "run",
        "--case",
        "opinfo.nn.functional.max_pool1d",
        "--backend",
        "eager",
        suite="opinfo-sampled",
    )
    assert proc.returncode == 0, proc.stderr
    (row,) = read_rows(tmp_path / "run")
    assert row["suite"] == "opinfo-sampled" and row["status"] == "pass" and row["samples"] == 16


@pytest.mark.slow
def test_compile_and_a_failing_export_with_reproducer(cli, tmp_path: Path) -> None:
    pytest.importorskip("expecttest")
    proc = _run(cli, tmp_path / "run", "--case", "opinfo.cat", "--backend", "onnxruntime,compile")
    assert proc.returncode == 0, proc.stderr
    rows = {r["backend"]: r for r in read_rows(tmp_path / "run")}
    assert rows["compile"]["status"] == "pass", rows["compile"]
    onnx = rows["onnxruntime"]  # the exporter rejects cat of empty tensors (torch 2.13)
    if onnx["status"] != "pass":
        assert onnx["blame"] and onnx["samples_error"] >= 1
        assert Path(onnx["worst_sample_file"]).is_file() and "multisample" in onnx["reproducer"]


@pytest.mark.slow
def test_guard_gives_a_skip_row_when_the_private_api_changed(
    cli, tmp_path: Path, fake_opinfo
) -> None:
    listed = cli("list", "suites", *PLUGIN)
    assert listed.returncode == 0, listed.stderr
    line = next(x for x in listed.stdout.splitlines() if x.startswith("opinfo "))
    assert "unavailable" in line and "lack" in line
    proc = _run(cli, tmp_path / "run", "--backend", "eager", "--strict")
    # The skip row is written, and --strict does not pass a run that tested nothing.
    assert proc.returncode == 1 and "no cell was tested" in proc.stderr, proc.stderr
    (row,) = read_rows(tmp_path / "run")
    assert row["case"] == "opinfo.unavailable" and row["status"] == "skip"
    assert "private API changed" in row["reason"] and row["blame"] == "harness"


def test_guard_names_a_missing_module(cli, monkeypatch) -> None:
    monkeypatch.setenv("TORCHPARITY_OPINFO_MODULE", "tests.data.no_such_module")
    listed = cli("list", "suites", *PLUGIN)
    assert listed.returncode == 0, listed.stderr
    assert "not found" in next(x for x in listed.stdout.splitlines() if x.startswith("opinfo "))


class _Sample:
    def __init__(self, input, *args, **kwargs):
        self.input, self.args, self.kwargs, self.name = input, args, kwargs, ""


def test_sample_calls_script_export_and_keep_constants() -> None:
    a, b = torch.arange(6.0).reshape(2, 3), torch.ones(3)
    samples = [_Sample(a, b, alpha=2), _Sample([a, a], dim=0), _Sample(a, float("inf"))]
    made = [
        calls.sample_call("torch.add", samples[0]),
        calls.sample_call("torch.cat", samples[1]),
        calls.sample_call("torch.maximum", _Sample(a, b)),
    ]
    assert made[0].expr == "torch.add({0}, {1}, alpha=2)" and len(made[1].tensors) == 2
    assert "<(2, 3) float32>" in made[0].label
    module = calls.batch_module(made, {}, "demo")
    inputs = tuple(t for c in made for t in c.tensors)
    eager = module(*inputs)
    scripted = torch.jit.script(module)(*inputs)
    assert all(torch.equal(x, y) for x, y in zip(eager, scripted, strict=True))
    assert torch.equal(eager[0], a + 2 * b)
    with pytest.raises(calls.Unrepresentable):
        calls.sample_call("torch.add", _Sample(a, object()))
    assert calls.callee_for(torch.nn.functional.relu)[0] == "torch.nn.functional.relu"
    assert calls.callee_for(lambda x: x)[0] == "_op"


def test_float_literals_keep_nonfinite_values() -> None:
    call = calls.sample_call("torch.clamp", _Sample(torch.zeros(2), -float("inf"), float("nan")))
    assert call.expr == "torch.clamp({0}, -float('inf'), float('nan'))"
    assert os.environ.get("TORCHPARITY_OPINFO_MODULE") is None  # the fixture does not leak
