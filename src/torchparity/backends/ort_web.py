"""ONNX Runtime in a browser (onnxruntime-web, wasm): the very .onnx file of the
``onnxruntime`` backend (same cache entry) run in a headless Chromium, the page
and its files served by torchparity on 127.0.0.1 with the COOP/COEP headers
that let onnxruntime-web use threads (backends/web_runner.py). Timing is done
in the page around ``session.run`` (performance.now()), so neither Python nor
HTTP is in the latency. Docs: docs/backends.md.

Options (``--backend-option onnxruntime-web.KEY=VALUE``): ``threads`` (wasm
threads asked for; default torch.get_num_threads()), ``opset`` (as for
onnxruntime: it selects the artifact).

Row columns: ``backend_browser`` (``chromium --version``, e.g. Chromium 156.0.8078.114),
``backend_onnxruntime_web``, ``backend_threads`` (what onnxruntime-web ran
with: 1 when the page was not cross-origin isolated, whatever was asked),
``backend_cross_origin_isolated``, ``backend_runner_install``,
``backend_runner_load_s``, ``backend_python_max_abs_diff`` (against Python
onnxruntime on the same file and inputs).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch

from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision
from torchparity.backends import js_build
from torchparity.backends.base import PrepareContext
from torchparity.backends.native_backend import NativeCall
from torchparity.backends.options import BackendOption
from torchparity.backends.ort_node import (
    OrtNodeBackend,
    js_unsupported,
)
from torchparity.backends.web_runner import ENV_BROWSER, WebRunner, browser_version, find_browser

OPTIONS = {
    "threads": BackendOption(
        "wasm threads asked for (default: torch.get_num_threads())", "int", minimum=1
    ),
    "opset": BackendOption(
        "ONNX opset of the shared onnxruntime artifact (default: the exporter's)", "int", minimum=7
    ),
}


class OrtWebBackend(OrtNodeBackend):
    returns_flat_leaves = True  # the page returns the graph's outputs in order
    name = "onnxruntime-web"
    generates = False  # the generation loop runs in Node only (backends/js_generation.py)
    description = (
        "the onnxruntime backend's .onnx file run by onnxruntime-web (wasm) in headless Chromium"
    )
    option_help = OPTIONS

    def supports(self, cell: Cell, precision: Precision) -> str | None:
        reason = js_unsupported(cell, precision) or js_build.tools_missing()
        if reason is None and find_browser() is None:
            reason = f"no Chromium or Chrome on PATH (or ${ENV_BROWSER}) to run onnxruntime-web in"
        return reason

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        install, artifact, threads = self.runner_inputs(module, example_inputs, ctx)
        browser = find_browser()
        assert browser is not None  # supports() said so
        runner = WebRunner(browser, install, artifact.read_bytes(), threads)
        package = js_build.verified_read(install, "node_modules/onnxruntime-web/package.json")
        ctx.notes.update(
            browser=browser_version(browser),
            onnxruntime_web=json.loads(package)["version"],
            threads_asked=threads,
            threads=runner.info.get("threads"),
            cross_origin_isolated=runner.info.get("cross_origin_isolated"),
            runner_load_s=runner.info.get("load_s"),
        )
        return NativeCall(runner, ctx.device.torch_device(), artifact)


BACKEND = OrtWebBackend()
