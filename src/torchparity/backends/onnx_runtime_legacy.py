"""ONNX Runtime behind the legacy TorchScript-based exporter
(torch.onnx.export(dynamo=False)); everything else as in onnx_runtime.py."""

from torchparity.backends.onnx_runtime import OnnxRuntimeBackend

BACKEND = OnnxRuntimeBackend(
    "onnxruntime-legacy",
    dynamo=False,
    description="torch.onnx.export(dynamo=False) -> onnx.checker -> onnxruntime.InferenceSession",
)
