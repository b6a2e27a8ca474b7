"""Backend registry. Built-in backends are imported on first use (their
libraries are heavy); plugins add theirs with :func:`register_backend`."""

from __future__ import annotations

import importlib

from torchparity.backends.base import Backend, PrepareContext

# name -> module defining BACKEND (a Backend instance)
BUILTIN_BACKENDS: dict[str, str] = {
    "eager": "torchparity.backends.eager",
    "torchscript": "torchparity.backends.torchscript",
    "torchscript-trace": "torchparity.backends.torchscript_trace",
    "onnxruntime": "torchparity.backends.onnx_runtime",
    "onnxruntime-legacy": "torchparity.backends.onnx_runtime_legacy",
    "compile": "torchparity.backends.torch_compile",
    "export": "torchparity.backends.torch_export",
    "aoti": "torchparity.backends.aoti",
    # C++ (the native runner) on the artifacts of torchscript and aoti
    "torchscript-cpp": "torchparity.backends.torchscript_cpp",
    "aoti-cpp": "torchparity.backends.aoti_cpp",
    "ddp": "torchparity.backends.ddp",
    # int8 dynamic quantization with torchao, in eager (compile serves it too)
    "torchao": "torchparity.backends.torchao_int8",
    # deployment runtimes: ExecuTorch, OpenVINO, ONNX Runtime from JavaScript
    "executorch": "torchparity.backends.executorch_runtime",
    "openvino": "torchparity.backends.openvino_runtime",
    "onnxruntime-node": "torchparity.backends.ort_node",
    "onnxruntime-web": "torchparity.backends.ort_web",
}

_REGISTERED: dict[str, Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Make ``backend`` selectable by its name (``--backend NAME``)."""
    if not backend.name:
        raise ValueError("a backend needs a name")
    _REGISTERED[backend.name] = backend
    return backend


def backend_names() -> list[str]:
    return sorted(set(BUILTIN_BACKENDS) | set(_REGISTERED))


def get_backend(name: str) -> Backend:
    if name not in _REGISTERED:
        if name not in BUILTIN_BACKENDS:
            raise KeyError(name)
        module = importlib.import_module(BUILTIN_BACKENDS[name])
        _REGISTERED[name] = module.BACKEND
    return _REGISTERED[name]


def runtime_language(name: str) -> str | None:
    """The language backend ``name``'s runtime is called from (``Backend.runtime_language``);
    None for a name no backend has."""
    try:
        return get_backend(name).runtime_language
    except KeyError:
        return None


__all__ = [
    "Backend",
    "PrepareContext",
    "register_backend",
    "get_backend",
    "backend_names",
    "runtime_language",
]
