"""The deployment-runtime backends end to end through the command line:
executorch (.pte with XNNPACK), openvino (CPU plugin, effective precision),
onnxruntime-node (a Node process) and onnxruntime-web (headless Chromium);
each passes on a tiny model and says why when its runtime is missing."""

from __future__ import annotations

import importlib.util
import os

import pytest
import torch

from tests.backend_runs import by_cell, explain, run_rows
from torchparity.backends import js_build

MLP = ("--suite", "models", "--case", "mlp", "--precision", "fp32")


def _needs(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed (the dev extra installs it)")


def _check_pass(row: dict) -> None:
    assert row["status"] == "pass", explain([row])
    assert 0 <= row["max_abs_err"] < 1e-5 and row["eager_max_abs_diff"] < 1e-5
    assert row["latency_ms_median"] > 0


def test_executorch_and_openvino_pass_and_record_what_ran(tmp_path):
    _needs("executorch")
    _needs("openvino")
    rows = run_rows(
        tmp_path / "run",
        *("--suite", "models", "--case", "mlp", "--precision", "fp32,bf16"),
        *("--backend", "executorch,openvino"),
    )
    cells = by_cell(rows)
    executorch = cells["mlp", "fp32", "executorch"]
    _check_pass(executorch)
    assert executorch["backend_delegate"] == "xnnpack" and executorch["backend_executorch"]
    assert executorch["backend_delegated_nodes"] > 0
    assert 0 < executorch["backend_delegated_share"] <= 1
    fp32, bf16 = cells["mlp", "fp32", "openvino"], cells["mlp", "bf16", "openvino"]
    _check_pass(fp32)
    assert fp32["backend_precision_hint"] == fp32["backend_effective_precision"] == "f32"
    assert fp32["effective_precision"] == "fp32"  # in torchparity's names
    assert bf16["status"] == "pass", explain(rows)
    assert bf16["backend_precision_hint"] == "bf16"
    assert bf16["backend_effective_precision"] in ("bf16", "f32")  # what this CPU ran
    assert (
        bf16["effective_precision"]
        == {"bf16": "bf16", "f32": "fp32"}[bf16["backend_effective_precision"]]
    )
    assert {r["runtime_language"] for r in rows} == {"Python"}


@pytest.mark.slow  # lowering alone; the run above covers the backend end to end
def test_executorch_static_program_fails_loudly_at_another_shape(tmp_path):
    _needs("executorch")
    from torchparity.axes.devices import get_device
    from torchparity.axes.matrix import Cell
    from torchparity.axes.precision import PRECISIONS
    from torchparity.backends import PrepareContext, get_backend

    model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU()).eval()
    cell = Cell("mlp", "model", "test", "cpu", "fp32", "executorch")
    ctx = PrepareContext(cell, get_device("cpu"), PRECISIONS["fp32"], cache_dir=tmp_path)
    with torch.no_grad():
        call = get_backend("executorch").prepare(model, (torch.randn(4, 16),), ctx)
        x = torch.randn(4, 16)
        assert torch.allclose(call(x)[0], model(x), atol=1e-6)
        with pytest.raises(RuntimeError):
            call(torch.randn(7, 16))


class _EmptyPast(torch.nn.Module):
    """A KV cache's first step: an empty past concatenated with the new keys."""

    def forward(self, keys: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.zeros(0), keys], dim=-2)


def test_openvino_names_the_operations_it_could_not_convert(tmp_path):
    _needs("openvino")
    from torchparity._core.errors import first_line
    from torchparity.axes.devices import get_device
    from torchparity.axes.matrix import Cell
    from torchparity.axes.precision import PRECISIONS
    from torchparity.backends import PrepareContext, get_backend
    from torchparity.verdicts.blame import classify

    cell = Cell("empty_past", "model", "test", "cpu", "fp32", "openvino")
    ctx = PrepareContext(cell, get_device("cpu"), PRECISIONS["fp32"], cache_dir=tmp_path)
    with pytest.raises(NotImplementedError) as info:
        get_backend("openvino").prepare(_EmptyPast().eval(), (torch.ones(2, 2, 4, 8),), ctx)
    line = first_line(info.value)
    assert line.startswith("NotImplementedError: OpenVINO's PyTorch frontend could not convert")
    assert "aten.cat.default" in line and "Axis -2 out of the tensor rank range" in line, line
    assert "Failed operations detailed log" in str(info.value)  # the whole report kept
    assert classify("openvino", {"status": "error", "reason": f"prepare: {line}"}) == "openvino"


def test_backends_skip_without_their_runtime(tmp_path):
    # A directory first on the path whose executorch and openvino fail to
    # import, as on a machine without the extras; a PATH without node and npm.
    shadow = tmp_path / "shadow"
    for name in ("executorch", "openvino"):
        (shadow / name).mkdir(parents=True)
        (shadow / name / "__init__.py").write_text(f'raise ImportError("No module named {name}")\n')
    bare = tmp_path / "bin"
    bare.mkdir()
    rows = run_rows(
        tmp_path / "run",
        *MLP,
        *("--backend", "executorch,openvino,onnxruntime-node,onnxruntime-web"),
        env={
            "PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")]),
            "PATH": str(bare),
        },
    )
    reasons = {r["backend"]: r["reason"] for r in rows if r["status"] == "skip"}
    assert set(reasons) == {"executorch", "openvino", "onnxruntime-node", "onnxruntime-web"}
    assert {r["backend"]: r["runtime_language"] for r in rows} == {
        "executorch": "Python",
        "openvino": "Python",
        "onnxruntime-node": "JavaScript",
        "onnxruntime-web": "JavaScript",
    }
    assert "pip install 'torchparity[executorch]'" in reasons["executorch"]
    assert "pip install 'torchparity[openvino]'" in reasons["openvino"]
    for name in ("onnxruntime-node", "onnxruntime-web"):
        assert reasons[name] == "the JavaScript runners need node and npm on PATH"


def test_onnxruntime_web_skips_without_a_browser(monkeypatch, tmp_path):
    if js_build.tools_missing():
        pytest.skip(js_build.tools_missing())
    from torchparity.axes.matrix import Cell
    from torchparity.axes.precision import PRECISIONS
    from torchparity.backends import get_backend

    monkeypatch.setenv("TORCHPARITY_CHROMIUM", str(tmp_path / "no-such-browser"))
    cell = Cell("mlp", "model", "models", "cpu", "fp32", "onnxruntime-web")
    reason = get_backend("onnxruntime-web").supports(cell, PRECISIONS["fp32"])
    assert reason and reason.startswith("no Chromium or Chrome on PATH"), reason


def test_js_runners_install_sealed_and_pruned(js_runners):
    assert js_runners.installed and (js_runners.directory / "node_runner.mjs").is_file()
    bins = js_runners.directory / "node_modules" / "onnxruntime-node" / "bin" / "napi-v6"
    assert len([p for p in bins.glob("*/*") if p.is_dir()]) == 1  # this platform's only
    root = js_runners.directory.parent.parent
    assert js_build.ensure_installed(root).installed is False
    # A file changed after install fails the seal (checked once per process).
    core = js_runners.directory / "core.mjs"
    original = core.read_bytes()
    js_build._VERIFIED.clear()
    try:
        core.write_text("process.exit(9)\n", encoding="utf-8")
        assert js_build.unverified(js_runners.directory) == "files changed since install"
    finally:
        core.write_bytes(original)
    assert js_build.unverified(js_runners.directory) is None


@pytest.mark.slow  # a second npm ci
def test_a_tampered_install_is_installed_again(js_runners):
    js_build._VERIFIED.clear()
    (js_runners.directory / "core.mjs").write_text("process.exit(9)\n", encoding="utf-8")
    again = js_build.ensure_installed(js_runners.directory.parent.parent)
    assert again.installed and again.rebuilt == "files changed since install"
    assert "process.exit(9)" not in (again.directory / "core.mjs").read_text()


def test_onnxruntime_node_passes_fp32_fp16_and_int64(js_runners, tmp_path):
    rows = run_rows(
        tmp_path / "run",
        "--suite",
        "models",
        "--case",
        "mlp",
        "--case",
        "embedding_bag_recsys",
        "--precision",
        "fp32,fp16,bf16",
        "--backend",
        "onnxruntime-node",
    )
    cells = by_cell(rows)
    _check_pass(cells["mlp", "fp32", "onnxruntime-node"])
    for key in [
        ("mlp", "fp16"),
        ("embedding_bag_recsys", "fp32"),
        ("embedding_bag_recsys", "fp16"),
    ]:
        row = cells[(*key, "onnxruntime-node")]
        assert row["status"] == "pass", explain(rows)
        # The same file in Python onnxruntime gives the same numbers.
        assert row["backend_python_max_abs_diff"] == 0.0
        assert row["backend_onnxruntime_node"] == "1.31.1" and row["backend_node"]
    bf16 = cells["mlp", "bf16", "onnxruntime-node"]
    assert bf16["status"] == "skip" and "bfloat16" in bf16["reason"]
    assert {r["runtime_language"] for r in rows} == {"JavaScript"}


def test_a_0d_output_stays_0d_against_python_onnxruntime(tmp_path):
    """The Python side of the JavaScript runners' comparison: a 0-d output (a
    sum) from Python ONNX Runtime keeps its shape, so it equals the runner's."""
    _needs("onnxruntime")
    import onnx
    from onnx import TensorProto, helper

    from torchparity.backends.native_backend import NativeCall
    from torchparity.backends.ort_node import python_diff

    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0)],
        "sum",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )
    path = tmp_path / "sum.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    x = torch.arange(128, dtype=torch.float32).reshape(8, 16) / 4  # sums exactly in any order
    call = NativeCall(None, torch.device("cpu"), path)  # type: ignore[arg-type]
    call.first = ((x,), [x.sum()])  # what a runner returned: a 0-d tensor
    assert python_diff(path, call) == 0.0


def test_onnxruntime_node_keeps_0d_outputs_and_output_dtypes(js_runners, tmp_path):
    """Issue 36's probe: a 0-d output is 0-d from Node too (no difference
    from Python, the same blame), and a FLOAT output of a fp16 graph fails."""
    from tests.helpers import DATA

    rows = run_rows(
        tmp_path / "run",
        *("--case-file", str(DATA / "dtype_cases.py"), "--suite", "dtype-probe"),
        *("--precision", "fp16", "--backend", "onnxruntime,onnxruntime-node"),
    )
    cells = by_cell(rows)
    node, python = (cells["sigmoid_sum", "fp16", b] for b in ("onnxruntime-node", "onnxruntime"))
    assert node["backend_python_max_abs_diff"] == 0.0, explain(rows)
    assert (node["status"], node.get("blame")) == (python["status"], python.get("blame"))
    overflow = cells["fp16_overflow_sum", "fp16", "onnxruntime-node"]
    assert overflow["status"] == "fail" and overflow["output_dtype"] == "float32", explain(rows)
    assert "output dtype float32 where eager at fp16 returns float16" in overflow["reason"]


def test_onnxruntime_web_passes_in_headless_chromium_with_threads(js_runners, tmp_path):
    from torchparity.backends.web_runner import find_browser

    if find_browser() is None:
        pytest.skip("no Chromium on PATH (.ci/run installs Debian's chromium)")
    (row,) = run_rows(
        tmp_path / "run",
        *MLP,
        "--backend",
        "onnxruntime-web",
        "--backend-option",
        "onnxruntime-web.threads=2",
    )
    _check_pass(row)
    assert row["backend_browser"].startswith(("Chromium", "Google Chrome"))
    assert row["backend_cross_origin_isolated"] is True
    assert row["backend_threads"] == 2  # COOP/COEP served: the wasm threads ran
    assert row["backend_python_max_abs_diff"] < 1e-6  # its own kernels: close, not equal
    assert row["backend_onnxruntime_web"] == "1.31.1"
