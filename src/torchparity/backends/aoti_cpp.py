"""aoti-cpp: the AOTInductor package of the ``aoti`` backend (the same cache
entry) loaded with ``torch::inductor::AOTIModelPackageLoader`` and run by the
native runner, a C++ program (docs/native-runner.md)."""

from __future__ import annotations

from torchparity.backends.native_backend import NativeBackend


class AotiCppBackend(NativeBackend):
    name = "aoti-cpp"
    description = "the aoti package run from C++ (AOTIModelPackageLoader) by the native runner"
    kind = "aoti"
    artifact_backend = "aoti"


BACKEND = AotiCppBackend()
