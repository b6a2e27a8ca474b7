"""OpenVINO: torch.export -> openvino.convert_model -> openvino.save_model (an
IR .xml/.bin pair, cached and sealed as one file) -> read back and compiled for
the CPU plugin with the precision hint set from the cell's precision.

The CPU plugin's default precision depends on the CPU (bf16 where it has
AVX512-BF16 or AMX, whatever the model's dtype), and a hint it cannot honour
(f16 on a CPU without fp16) silently becomes another, so the hint is always
set and the precision that actually ran is read back from the compiled model
into ``effective_precision``: the row's ``effective_precision`` in torchparity's
names (fp32, fp16, bf16), and ``backend_effective_precision`` in OpenVINO's.

Options (``--backend-option openvino.KEY=VALUE``): ``inference_precision``
(f32, bf16 or f16: the hint; default from the cell: fp32 and fp64 -> f32,
fp16 -> f16, bf16 -> bf16), ``num_threads`` (the CPU plugin's
INFERENCE_NUM_THREADS; default torch.get_num_threads()).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchparity._core.errors import disk_faults
from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision
from torchparity.backends.artifacts import artifact_key, library_version, load_or_build
from torchparity.backends.base import Backend, PrepareContext
from torchparity.backends.openvino_io import (
    DEFAULT_HINT,
    HINTS,
    PRECISION_NAMES,
    _pack,
    _to_host,
    _to_torch,
    _unpack,
    conversion_failure,
)
from torchparity.backends.options import BackendOption
from torchparity.backends.torch_export import autocast_unsupported, export_program

OPTIONS = {
    "inference_precision": BackendOption(
        "the CPU plugin's precision hint (default: the cell's)", "choice", ("f32", "bf16", "f16")
    ),
    "kv_cache_precision": BackendOption(
        "generation: the CPU plugin's KV_CACHE_PRECISION (default: the hint's; u8 is "
        "OpenVINO's own default)",
        "choice",
        ("f32", "bf16", "f16", "u8"),
    ),
    "num_threads": BackendOption(
        "INFERENCE_NUM_THREADS (default: torch.get_num_threads())", "int", minimum=1
    ),
}
INSTALL_HINT = "pip install 'torchparity[openvino]'"


def _missing() -> str | None:
    try:
        import openvino  # noqa: F401
    except ImportError as exc:
        return f"openvino is not installed ({INSTALL_HINT}): {exc}"
    return None


def _convert(module: torch.nn.Module, example_inputs: tuple) -> Any:
    import openvino as ov

    program = export_program(module, example_inputs)
    try:
        return ov.convert_model(program)
    except Exception as exc:  # OpConversionFailure; its first line names no operation
        line = conversion_failure(str(exc))
        if line is None:
            raise
        # The whole report stays in the message (the row's traceback) after the line.
        raise NotImplementedError(f"{line}\n{exc}") from None


def _save(module: torch.nn.Module, example_inputs: tuple, path: Path) -> None:
    import openvino as ov

    model = _convert(module, example_inputs)
    xml = path.with_name(path.name + ".xml")
    try:
        # OpenVINO's writer says only "basic_ios::clear: iostream error" on a full
        # disk: the folder is asked why, before the partial files are removed.
        with disk_faults(path.parent):
            # Weights as they are: save_model would compress them to fp16 by default.
            ov.save_model(model, str(xml), compress_to_fp16=False)
        path.write_bytes(_pack(xml.read_bytes(), xml.with_suffix(".bin").read_bytes()))
    finally:
        xml.unlink(missing_ok=True)
        xml.with_suffix(".bin").unlink(missing_ok=True)


class OpenVinoBackend(Backend):
    returns_flat_leaves = True  # FlatOutputs: the pipeline names the leaves
    name = "openvino"
    description = "torch.export -> openvino.convert_model -> IR -> compile_model('CPU')"
    options = OPTIONS

    def supports(self, cell: Cell, precision: Precision) -> str | None:
        if cell.device != "cpu":
            return f"the openvino backend compiles for OpenVINO's CPU plugin, not {cell.device}"
        return autocast_unsupported(precision) or _missing()

    generates = True  # a stateful model (backends/openvino_generation.py)

    def generation_unsupported(self, case: Any, precision: Precision) -> str | None:
        if precision.quant is not None:
            return "int8 generation on openvino is not built"
        if precision.dtype not in (torch.float32, torch.bfloat16):
            return f"the stateful generation model is built at fp32 and bf16, not {precision.dtype}"
        from torchparity.backends.past_kv_io import case_unsupported

        return autocast_unsupported(precision) or _missing() or case_unsupported(case)

    def prepare_generation(
        self, model: torch.nn.Module, prompts: Any, max_len: int, ctx: PrepareContext
    ) -> Any:
        from torchparity.backends.openvino_generation import prepare_openvino_generation

        return prepare_openvino_generation(model, ctx)

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        import openvino as ov

        hint = str(ctx.options.get("inference_precision") or DEFAULT_HINT[ctx.precision.dtype])
        if hint not in HINTS:
            raise ValueError(f"inference_precision={hint!r}; valid: {', '.join(HINTS)}")
        threads = int(ctx.options.get("num_threads", torch.get_num_threads()))
        core = ov.Core()

        def load(path: Path) -> Any:
            xml, weights = _unpack(path.read_bytes())
            model = core.read_model(xml, ov.Tensor(np.frombuffer(weights, dtype=np.uint8)))
            config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads}
            return core.compile_model(model, "CPU", config)

        key = artifact_key(ctx, module, [f"openvino={library_version('openvino')}"])
        compiled = load_or_build(
            ctx, key, ".ovir", lambda p: _save(module, example_inputs, p), load
        )
        ran = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        ctx.notes.update(
            openvino=library_version("openvino"),
            precision_hint=hint,
            effective_precision=ran,
            threads=int(compiled.get_property("INFERENCE_NUM_THREADS")),
        )
        ctx.effective_precision = PRECISION_NAMES.get(ran, ran)
        request = compiled.create_infer_request()
        count = len(compiled.outputs)

        def call(*inputs: Any) -> list[torch.Tensor]:
            request.infer([_to_host(x) for x in inputs])
            return [_to_torch(request.get_output_tensor(i)) for i in range(count)]

        return call


BACKEND = OpenVinoBackend()
