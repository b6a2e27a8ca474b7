"""torchscript-cpp: the TorchScript file of the ``torchscript`` backend (the
same cache entry) loaded with ``torch::jit::load`` and run by the native
runner, a C++ program, as a C++ service deploys it (docs/native-runner.md).

Options: those of ``torchscript`` (``freeze``, ``optimize``), which select the
file."""

from __future__ import annotations

from torchparity.backends.native_backend import NativeBackend


class TorchScriptCppBackend(NativeBackend):
    name = "torchscript-cpp"
    description = "the torchscript artifact run from C++ (torch::jit::load) by the native runner"
    kind = "torchscript"
    artifact_backend = "torchscript"


BACKEND = TorchScriptCppBackend()
