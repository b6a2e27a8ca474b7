"""The device axis: detection, skip reasons and option handling. The CUDA/MPS
measurements themselves run only where such a device exists."""

import pandas as pd
import pytest
import torch

from tests.helpers import DATA, read_env
from torchparity._core.rundir import RunDir
from torchparity.axes.devices import DEVICES, CUDADevice, DeviceOptions, MPSDevice, get_device
from torchparity.axes.matrix import Cell
from torchparity.backends import register_backend
from torchparity.backends.base import Backend
from torchparity.cell.context import precheck

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
needs_mps = pytest.mark.skipif(not torch.backends.mps.is_available(), reason="no MPS device here")


def test_every_device_kind_is_one_entry_with_a_reason_when_absent():
    assert {"cpu", "cuda", "mps"} <= set(DEVICES)
    assert get_device("cpu").unavailable() is None
    for name in ("cuda", "mps"):
        reason = get_device(name).unavailable()
        available = (
            torch.cuda.is_available() if name == "cuda" else torch.backends.mps.is_available()
        )
        assert (reason is None) == available
        if reason:
            assert len(reason) > 15


def test_absent_device_cells_skip_with_the_reason():
    if torch.cuda.is_available():
        pytest.skip("CUDA is present here")
    reason = precheck(Cell("x", "model", "s", "cuda", "fp32", "eager"))
    assert reason and reason.startswith("cuda: ")


def test_cuda_options_apply_and_are_recorded_without_a_gpu():
    matmul, cudnn, bench = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.benchmark,
    )
    try:
        facts = CUDADevice().configure(DeviceOptions(tf32=True, cudnn_benchmark=True))
        assert facts["cuda_tf32"] is True and facts["cudnn_benchmark"] is True
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        facts = CUDADevice().configure(DeviceOptions())
        assert facts["cuda_tf32"] is False  # conformance default: IEEE fp32
        assert not torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn
        torch.backends.cudnn.benchmark = bench


def test_mps_fallback_is_detected(monkeypatch):
    monkeypatch.setenv("PYTORCH_ENABLE_MPS_FALLBACK", "1")
    assert MPSDevice().configure(DeviceOptions(mps_fallback=True)) == {"mps_fallback": True}
    monkeypatch.delenv("PYTORCH_ENABLE_MPS_FALLBACK")
    assert MPSDevice().configure(DeviceOptions()) == {"mps_fallback": False}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "cpu", "--tf32"], "--tf32 applies to the cuda device; add --device cuda"),
        (["--device", "cpu", "--cudnn-benchmark"], "--cudnn-benchmark applies to the cuda device"),
        (["--device", "cpu,cuda", "--mps-fallback"], "--mps-fallback applies to the mps device"),
        (["--device", "xpu"], "unknown device 'xpu'; valid: cpu, cuda, mps"),
    ],
)
def test_device_option_errors(cli, args, message):
    proc = cli("run", *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_device_flags_are_stored_for_resume(cli, tiny_cases, tmp_path):
    out = tmp_path / "run"
    proc = cli(
        "run",
        "--case-file",
        str(tiny_cases),
        "--suite",
        "tiny",
        "--case",
        "tiny_linear",
        "--device",
        "cpu,cuda,mps",
        "--precision",
        "fp32",
        "--tf32",
        "--mps-fallback",
        "--out",
        str(out),
        "--quiet",
        "--no-isolate",
        "--min-time",
        "0.01",
    )
    assert proc.returncode == 0, proc.stderr
    stored = RunDir(out).read_selection()
    assert stored["tf32"] is True and stored["mps_fallback"] is True
    frame = pd.read_csv(out / "results.csv").set_index("device")
    assert frame.loc["cpu", "status"] == "pass"
    env = read_env(out)
    assert "mps_fallback" in env and "cuda_tf32_matmul" in env


@pytest.mark.slow
def test_a_plugin_device_is_one_more_entry(cli, tiny_cases, tmp_path):
    out = tmp_path / "run"
    proc = cli(
        "run",
        "--case-file",
        str(tiny_cases),
        "--case-file",
        str(DATA / "extra_device.py"),
        "--suite",
        "tiny",
        "--device",
        "host",
        "--precision",
        "fp32,bf16",
        "--out",
        str(out),
        "--quiet",
        "--min-time",
        "0.01",
    )
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out / "results.csv")
    assert set(frame.device) == {"host"} and set(frame.status) == {"pass"}
    assert frame.host_alias_blocks.max() > 0  # the device's own clock timed the blocks


class NoAutocast(Backend):
    name = "test-no-autocast"

    def prepare(self, module, example_inputs, ctx):
        return module


def test_autocast_precisions_skip_backends_that_cannot_honour_them():
    register_backend(NoAutocast())
    reason = precheck(Cell("x", "model", "s", "cpu", "amp-bf16", "test-no-autocast"))
    assert reason == "test-no-autocast does not run under autocast (amp-bf16)"
    assert precheck(Cell("x", "model", "s", "cpu", "amp-bf16", "eager")) is None


# Backends whose supports() says why autocast cannot run on them, and what to run instead.
AUTOCAST_REASONS = {
    "torchscript": "autocast is not applied inside a TorchScript artifact",
    "torchscript-trace": "autocast is not applied inside a TorchScript artifact",
    "export": "autocast is not captured into an exported artifact",
    "aoti": "autocast is not captured into an exported artifact",
    "aoti-cpp": "autocast is not captured into an exported artifact",
    "torchscript-cpp": "autocast is not applied inside a TorchScript artifact",
    "onnxruntime-web": "autocast has no ONNX equivalent",
    "executorch": "autocast is not captured into an exported artifact",
    "openvino": "autocast is not captured into an exported artifact",
    "onnxruntime": "autocast has no ONNX equivalent",
    "onnxruntime-legacy": "autocast has no ONNX equivalent",
    "onnxruntime-node": "autocast has no ONNX equivalent",
}


@pytest.mark.parametrize("backend", sorted(AUTOCAST_REASONS))
def test_an_autocast_skip_gives_the_backend_s_own_reason(backend):
    reason = precheck(Cell("x", "model", "s", "cpu", "amp-bf16", backend))
    assert reason is not None and AUTOCAST_REASONS[backend] in reason, reason


def test_autocast_on_cpu_end_to_end(cli, tiny_cases, tmp_path):
    out = tmp_path / "run"
    proc = cli(
        "run",
        "--case-file",
        str(tiny_cases),
        "--suite",
        "tiny",
        "--device",
        "cpu",
        "--precision",
        "amp-bf16",
        "--out",
        str(out),
        "--quiet",
        "--no-isolate",
        "--min-time",
        "0.01",
    )
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out / "results.csv")
    assert set(frame.status) == {"pass"}, frame[["case", "status", "reason"]]
    # autocast really ran in bf16: the error is bf16-sized, not fp32-sized
    assert frame.rel_l2.max() > 1e-5


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16", "amp-fp16", "amp-bf16"])
def test_cuda_cells_pass_with_events_and_memory(cli, tiny_cases, tmp_path, precision):
    out = tmp_path / "run"
    proc = cli(
        "run",
        "--case-file",
        str(tiny_cases),
        "--suite",
        "tiny",
        "--device",
        "cuda",
        "--precision",
        precision,
        "--out",
        str(out),
        "--quiet",
        "--min-time",
        "0.05",
    )
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out / "results.csv")
    assert set(frame.status) == {"pass"}, frame[["case", "status", "reason"]]
    assert (frame.cuda_peak_mem_mb > 0).all() and (frame.cuda_tf32 == False).all()  # noqa: E712


@needs_mps
def test_mps_cells_pass(cli, tiny_cases, tmp_path):
    out = tmp_path / "run"
    proc = cli(
        "run",
        "--case-file",
        str(tiny_cases),
        "--suite",
        "tiny",
        "--device",
        "mps",
        "--precision",
        "fp32,fp16",
        "--out",
        str(out),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    assert set(pd.read_csv(out / "results.csv").status) == {"pass"}
