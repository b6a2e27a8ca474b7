"""Known limitations of the deployment paths on the built-in models: each a
reason and a link, so a run says which findings are known and which are news."""

from __future__ import annotations

from torchparity import KnownFailure

# Whichever library meets the bf16 graph first, the row's reason starts with
# "CPUExecutionProvider has no torch.bfloat16 kernel" (backends/onnx_runtime.py).
ONNX_CPU_BF16 = KnownFailure(
    "ONNX Runtime's CPU provider has no bf16 kernels (Gemm, MatMul, Conv, LSTM, GRU), and "
    "onnx shape inference rejects bf16 Conv/LSTM/GRU at the exporter's opset",
    backend="onnxruntime*",
    device="cpu",
    precision="bf16",
    link="https://github.com/microsoft/onnxruntime/issues/13262",
    blame="onnxruntime",
)

# TorchScript synthesises no source for a dataclass's generated __init__.
SCRIPTED_DATACLASS_OUTPUT = tuple(
    KnownFailure(
        "TorchScript cannot compile a dataclass output (its generated __init__ has no source); "
        "the trace route (torchscript-trace) handles it",
        backend=backend,
        link="https://github.com/pytorch/pytorch/issues/72901",
        blame="pytorch",
    )
    for backend in ("torchscript", "torchscript-cpp")
)
