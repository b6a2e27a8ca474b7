"""ONNX Runtime from Node (onnxruntime-node): the very .onnx file of the
``onnxruntime`` backend (same cache entry) run by a Node process, as a Node
service would run it. The process (backends/js/node_runner.mjs, installed with
its pinned npm packages by backends/js_build.py) speaks the native runner's
protocol: tensors in and out as tensor files, timing done inside Node around
``session.run`` (performance.now()), so Python's overhead is not in the
latency. Docs: docs/backends.md.

Options (``--backend-option onnxruntime-node.KEY=VALUE``): ``threads`` (ORT's
intra-op threads; default torch.get_num_threads()), ``opset`` (as for
onnxruntime: it selects the artifact).

Row columns: ``backend_runner_install`` (installed in N s, or cached),
``backend_onnxruntime_node``, ``backend_node``, ``backend_runner_load_s``,
``backend_runner_threads``, and ``backend_python_max_abs_diff``: the largest
difference between Node's outputs and Python onnxruntime's on the same file
and inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from torchparity._core.errors import first_line
from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision
from torchparity.backends import js_build
from torchparity.backends.base import PrepareContext
from torchparity.backends.native_backend import NativeBackend, NativeCall
from torchparity.backends.native_client import RunnerProcess
from torchparity.backends.options import BackendOption
from torchparity.verdicts.drift import max_abs_diff

OPTIONS = {
    "threads": BackendOption(
        "ONNX Runtime intra-op threads (default: torch.get_num_threads())", "int", minimum=1
    ),
    "opset": BackendOption(
        "ONNX opset of the shared onnxruntime artifact (default: the exporter's)", "int", minimum=7
    ),
}
NO_BFLOAT16 = "ONNX Runtime's JavaScript API has no bfloat16 tensor type"

# A failed install is remembered per process: later cells get the same error at once.
_INSTALL_ERRORS: dict[str, js_build.JsInstallError] = {}


def runner_install(ctx: PrepareContext) -> js_build.JsInstall:
    """The installed JavaScript runners under the run's cache root (installed
    now if needed), recorded in ``ctx.notes`` (and why a cached one was not used)."""
    key = f"{js_build.SOURCE_DIR.as_posix()}|{ctx.runner_cache}"
    if key in _INSTALL_ERRORS:
        raise _INSTALL_ERRORS[key]
    try:
        install = js_build.ensure_installed(ctx.runner_cache)
    except js_build.JsInstallError as exc:
        _INSTALL_ERRORS[key] = exc
        raise
    how = f"rebuilt ({install.rebuilt})" if install.rebuilt else "installed"
    ctx.notes["runner_install"] = (
        f"{how} in {install.seconds:.1f} s" if install.installed else "cached"
    )
    return install


def checked_onnx(path: Path) -> Path:
    """The .onnx file's path once onnx reads it (a torn file fails here and is rebuilt)."""
    import onnx

    onnx.checker.check_model(onnx.load(str(path)))
    return path


def js_unsupported(cell: Cell, precision: Precision) -> str | None:
    """Why a cell cannot run on ONNX Runtime's JavaScript packages, or None."""
    if cell.device != "cpu":
        return f"the JavaScript backends run on the CPU (wasm or native), not {cell.device}"
    if precision.autocast is not None:
        return "autocast has no ONNX equivalent; export a half model (fp16/bf16) instead"
    if precision.dtype == torch.bfloat16:
        return NO_BFLOAT16
    return None


def python_diff(artifact: Path, call: NativeCall) -> float | None:
    """Python onnxruntime on the same file and the first call's inputs: the
    largest difference from the JavaScript outputs (None when it cannot run)."""
    import numpy as np
    import onnxruntime as ort

    if call.first is None:
        return None
    inputs, leaves = call.first
    session = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    raw = session.run(None, {n: x.cpu().numpy() for n, x in zip(names, inputs, strict=True)})
    # np.array, not np.ascontiguousarray: that one makes a 0-d output (a sum) 1-d,
    # a shape that differs from the runner's () and so an infinite difference.
    return max_abs_diff(leaves, [torch.from_numpy(np.array(a)) for a in raw])


class OrtNodeBackend(NativeBackend):
    """Also the base of onnxruntime-web: a runner process on the onnxruntime
    backend's file, timed by the runner (NativeBackend.measure)."""

    returns_flat_leaves = True  # the runner returns the graph's outputs in order
    runtime_language = "JavaScript"  # onnxruntime-web inherits it (the page's JavaScript)
    name = "onnxruntime-node"
    description = "the onnxruntime backend's .onnx file run by onnxruntime-node in a Node process"
    artifact_backend = "onnxruntime"
    option_help = OPTIONS

    @property
    def options(self) -> Mapping[str, BackendOption | str] | None:  # type: ignore[override]
        return self.option_help

    def supports(self, cell: Cell, precision: Precision) -> str | None:
        return js_unsupported(cell, precision) or js_build.tools_missing()

    generates = True  # the loop in Node (backends/js_generation.py)

    def generation_unsupported(self, case: Any, precision: Precision) -> str | None:
        if precision.quant is not None:
            return "int8 generation on onnxruntime-node is not built"
        if precision.autocast is not None or precision.dtype != torch.float32:
            return "the Node generation loop runs the fp32 past-kv-io graph only"
        from torchparity.backends.past_kv_io import case_unsupported

        return case_unsupported(case) or js_build.tools_missing()

    def prepare_generation(
        self, model: torch.nn.Module, prompts: Any, max_len: int, ctx: PrepareContext
    ) -> Any:
        from torchparity.backends.js_generation import prepare_node_generation

        threads = int(ctx.options.get("threads", torch.get_num_threads()))
        # the install and the .onnx check passed in: js_generation never imports this module
        return prepare_node_generation(model, ctx, threads, runner_install(ctx), checked_onnx)

    def runner_inputs(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> tuple[js_build.JsInstall, Path, int]:
        """The installed runners, the onnxruntime backend's .onnx file (its
        cache entry) and the threads the cell asks for."""
        install = runner_install(ctx)
        artifact = self._python().artifact(module, example_inputs, ctx, checked_onnx)
        ctx.notes["artifact_of"] = self.artifact_backend
        return install, artifact, int(ctx.options.get("threads", torch.get_num_threads()))

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        install, artifact, threads = self.runner_inputs(module, example_inputs, ctx)
        command = [
            "node",
            str(js_build.node_runner_script(install)),  # a private copy of the checked files
            "--artifact",
            str(artifact),
            "--threads",
            str(threads),
        ]
        runner = RunnerProcess(command, label="node runner")
        ctx.notes.update(
            onnxruntime_node=runner.info.get("onnxruntime_node"),
            node=runner.info.get("node"),
            runner_load_s=runner.info.get("load_s"),
            runner_threads=runner.info.get("threads"),
        )
        return NativeCall(runner, ctx.device.torch_device(), artifact)

    def counting_unavailable(self) -> str | None:
        return (
            f"{self.name} runs its calls in a process of its own (Node's, or a browser's), "
            "which is not under callgrind; not counted"
        )

    def finalize(self, prepared: Callable[..., Any], ctx: PrepareContext) -> None:
        assert isinstance(prepared, NativeCall)
        prepared.runner.close()
        try:
            ctx.notes["python_max_abs_diff"] = python_diff(prepared.artifact, prepared)
        except Exception as exc:  # noqa: BLE001 - the JavaScript row stands; say why Python could not compare
            ctx.notes["python_max_abs_diff"] = None
            ctx.notes["python_error"] = first_line(exc)


BACKEND = OrtNodeBackend()
