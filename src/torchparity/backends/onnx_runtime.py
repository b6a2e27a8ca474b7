"""ONNX Runtime: torch.onnx.export to an .onnx file (the dynamo-based exporter
by default; the TorchScript-based one for ``onnxruntime-legacy``), checked with
onnx.checker, run in an onnxruntime.InferenceSession whose execution provider
follows the device.

Options (``--backend-option onnxruntime.KEY=VALUE``): ``opset`` (the exporter's
default when unset), ``graph_optimization`` (disable, basic, extended, all;
default all), ``intra_op_threads`` / ``inter_op_threads`` (default: torch's
thread counts, so ORT and eager use the same cores), ``allow_spinning``
(0 or 1, default 0: ORT's pool threads otherwise spin after each call, and in
interleaved timing that spin lands on the next block, eager's included),
``int8_quantizer`` (the int8 precisions: ``pt2e``, the default for
``int8-static``: the quantized reference's converted program exported as a QDQ
model, so ORT runs the very scales and zero points the reference means; or
``onnxruntime``, the default for ``int8-dynamic``, whose pt2e form has no ONNX
export: ORT's own ``quantize_static`` (QDQ, per-channel symmetric int8
weights, int8 activations, MinMax, on the same calibration batches) or
``quantize_dynamic`` (per-channel int8 weights) on the fp32 export).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision
from torchparity.backends.artifacts import artifact_key, library_version, load_or_build
from torchparity.backends.base import Backend, PrepareContext
from torchparity.backends.dynamic import (
    export_dynamic_shapes,
    onnx_dynamic_axes,
    record_signature,
    session_shapes,
)
from torchparity.backends.flat import flat_outputs
from torchparity.backends.options import BackendOption
from torchparity.backends.quantize import quantized_for
from torchparity.cases.inputs import tensor_digest
from torchparity.cases.shapes import DynamicDim

# The execution provider for each device kind.
PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "mps": "CoreMLExecutionProvider",
}
GRAPH_OPTIMIZATION = ("disable", "basic", "extended", "all")
OPTIONS = {
    "opset": BackendOption("ONNX opset to export (default: the exporter's)", "int", minimum=7),
    "graph_optimization": BackendOption(
        "ORT graph optimization level (default all)", "choice", GRAPH_OPTIMIZATION
    ),
    "intra_op_threads": BackendOption(
        "ORT intra-op threads (default: torch.get_num_threads(); 0: ORT's)", "int", minimum=0
    ),
    "inter_op_threads": BackendOption(
        "ORT inter-op threads (default: torch.get_num_interop_threads(); 0: ORT's)",
        "int",
        minimum=0,
    ),
    "allow_spinning": BackendOption(
        "1: ORT's pool threads spin after each call (ORT's own default); default 0",
        "choice",
        ("0", "1"),
    ),
    "int8_quantizer": BackendOption(
        "int8 cells: pt2e (the quantized reference's program as QDQ; default for int8-static) "
        "or onnxruntime (onnxruntime.quantization; default for int8-dynamic)",
        "choice",
        ("pt2e", "onnxruntime"),
    ),
}
INT8_QUANTIZERS = ("pt2e", "onnxruntime")
T = TypeVar("T")
_ONNX_BFLOAT16 = 16  # onnx.TensorProto.BFLOAT16


def _available_providers() -> list[str]:
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def _ort_value(x: torch.Tensor) -> Any:
    """A CPU tensor as an OrtValue; bf16 goes in as its bits (numpy has no bf16)."""
    import onnxruntime

    if x.dtype == torch.bfloat16:
        bits = x.view(torch.int16).numpy()
        return onnxruntime.OrtValue.ortvalue_from_numpy_with_onnx_type(bits, _ONNX_BFLOAT16)
    return onnxruntime.OrtValue.ortvalue_from_numpy(x.numpy())


class OnnxRuntimeBackend(Backend):
    """Export with torch.onnx (``dynamo`` selects the exporter), run with ONNX Runtime."""

    returns_flat_leaves = True  # FlatOutputs: the pipeline names the leaves

    options = OPTIONS
    shapes = True  # dynamic_shapes (dynamo) or dynamic_axes (legacy); the graph's inputs read back

    def __init__(
        self, name: str, dynamo: bool, description: str, quantized_modes: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self.dynamo = dynamo
        self.description = description
        self.quantized_modes = quantized_modes
        self.generates = dynamo  # the past-kv-io export follows optimum's (dynamo) exporter

    def supports(self, cell: Cell, precision: Precision) -> str | None:
        if precision.autocast is not None:
            return "autocast has no ONNX equivalent; export a half model (fp16/bf16) instead"
        provider = PROVIDERS.get(cell.device)
        if provider is None:
            return f"no ONNX Runtime execution provider known for device {cell.device!r}"
        try:
            available = _available_providers()
        except ImportError as exc:
            return f"onnxruntime is not installed ({exc})"
        if provider not in available:
            return f"{provider} is not available in this onnxruntime build (has {', '.join(available)})"
        return None

    def _naming(
        self, names: tuple[str, ...], inputs: tuple, dynamic: tuple[DynamicDim, ...]
    ) -> dict[str, Any]:
        """The exporter's keywords for the graph's input names (the dynamo
        exporter takes the wrapper's parameter names itself) and for the dims
        shape mode asks to be dynamic."""
        if self.dynamo:
            return {"dynamic_shapes": export_dynamic_shapes(dynamic, len(names))} if dynamic else {}
        tensors = [n for n, x in zip(names, inputs, strict=True) if isinstance(x, torch.Tensor)]
        axes = {"dynamic_axes": onnx_dynamic_axes(dynamic, names)} if dynamic else {}
        return {"input_names": tensors, **axes}

    def _export(
        self,
        module: torch.nn.Module,
        example_inputs: tuple,
        opset: int | None,
        path: Path,
        dynamic: tuple[DynamicDim, ...] = (),
    ) -> None:
        import onnx

        wrapped = flat_outputs(module, len(example_inputs)).eval()
        naming = self._naming(wrapped.input_names, example_inputs, dynamic)

        # The exporters narrate each step on stdout and log missing optional
        # libraries (torchvision) on every export; the row says what matters.
        for name in ("torch.onnx", "onnxscript", "onnx_ir"):
            logging.getLogger(name).setLevel(logging.ERROR)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapped,
                example_inputs,
                str(path),
                dynamo=self.dynamo,
                opset_version=opset,
                external_data=False,
                verbose=False,
                **naming,
            )
        onnx.checker.check_model(str(path), full_check=True)

    def artifact(
        self,
        module: torch.nn.Module,
        example_inputs: tuple,
        ctx: PrepareContext,
        load: Callable[[Path], T],
    ) -> T:
        """The cell's .onnx file, from the cache or exported, passed through
        ``load`` (which must fail on a torn file). Shared with the JavaScript
        backends, which hand the same file to ONNX Runtime in Node or a browser."""
        opset = int(ctx.options["opset"]) if ctx.options.get("opset") not in (None, "") else None
        facts = [
            f"dynamo={self.dynamo}",
            f"opset={opset}",
            f"onnx={library_version('onnx')}",
            f"onnxscript={library_version('onnxscript')}",
            f"onnxruntime={library_version('onnxruntime')}",
        ]
        if ctx.precision.quant is not None:
            build, more = self._int8_build(module, example_inputs, ctx, opset)
            return load_or_build(ctx, artifact_key(ctx, module, facts + more), ".onnx", build, load)
        key = artifact_key(ctx, module, facts)
        return load_or_build(
            ctx,
            key,
            ".onnx",
            lambda p: self._export(module, example_inputs, opset, p, ctx.dynamic),
            load,
        )

    def _int8_build(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext, opset: int | None
    ) -> tuple[Callable[[Path], None], list[str]]:
        """How to build an int8 cell's QDQ model, and the facts its key adds."""
        mode = str(ctx.precision.quant)
        default = "pt2e" if mode == "static" else "onnxruntime"
        quantizer = str(ctx.options.get("int8_quantizer") or default)
        if quantizer not in INT8_QUANTIZERS:
            raise ValueError(f"int8_quantizer={quantizer!r}; valid: {', '.join(INT8_QUANTIZERS)}")
        ctx.notes["int8_quantizer"] = quantizer
        if quantizer == "pt2e":
            quantized = quantized_for(module, example_inputs, ctx)
            return (
                lambda p: self._export(quantized.module, example_inputs, opset, p),
                [f"int8_quantizer={quantizer}", *quantized.key()],
            )
        ctx.notes["int8_recipe"] = ort_recipe(mode)
        calibration = [tuple(x for x in b if isinstance(x, torch.Tensor)) for b in ctx.calibration]

        def build(path: Path) -> None:
            with tempfile.TemporaryDirectory(prefix="torchparity-int8-") as tmp:
                fp32 = Path(tmp) / "fp32.onnx"
                self._export(module, example_inputs, opset, fp32)
                ort_quantize(fp32, path, mode, calibration)

        digest = tensor_digest([x for b in calibration for x in b])
        return build, [f"int8_quantizer={quantizer}", ort_recipe(mode), f"calibration={digest}"]

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:

        level_name = str(ctx.options.get("graph_optimization", "all"))
        if level_name not in GRAPH_OPTIMIZATION:
            raise ValueError(
                f"graph_optimization={level_name!r}; valid: {', '.join(GRAPH_OPTIMIZATION)}"
            )
        intra = int(ctx.options.get("intra_op_threads", torch.get_num_threads()))
        inter = int(ctx.options.get("inter_op_threads", torch.get_num_interop_threads()))
        spinning = str(ctx.options.get("allow_spinning", "0"))
        if spinning not in ("0", "1"):
            raise ValueError(f"allow_spinning={spinning!r}; valid: 0, 1")
        provider = PROVIDERS[ctx.cell.device]
        ctx.notes.update(
            exporter="dynamo" if self.dynamo else "torchscript",
            ort_provider=provider,
            ort_graph_optimization=level_name,
            ort_intra_op_threads=intra,
            ort_inter_op_threads=inter,
            ort_allow_spinning=int(spinning),
        )

        load = _session_loader(ctx, level_name, (intra, inter, spinning), provider)
        try:
            session = self.artifact(module, example_inputs, ctx, load)
        except Exception as exc:
            refusal = _dtype_refusal(exc, provider, ctx.precision.dtype)
            if refusal is None:
                raise
            raise refusal from None  # the message carries the checker's line
        names = [i.name for i in session.get_inputs()]
        if ctx.dynamic:
            record_signature(ctx.notes, ctx.dynamic, session_shapes(session))
        tensor_inputs = [x for x in example_inputs if isinstance(x, torch.Tensor)]
        if len(names) != len(tensor_inputs):
            raise RuntimeError(
                f"the ONNX graph takes {len(names)} inputs where the model takes {len(tensor_inputs)}"
            )
        device = ctx.device.torch_device()

        bf16_outputs = {
            i for i, o in enumerate(session.get_outputs()) if o.type == "tensor(bfloat16)"
        }
        call = _host_call(session, names, bf16_outputs, device)
        if (
            ctx.cell.device == "cuda"
            and not bf16_outputs
            and not any(x.dtype == torch.bfloat16 for x in tensor_inputs)
        ):
            call = _io_bound(session, names, call(*tensor_inputs))
            ctx.notes["ort_io_binding"] = True
        return call

    def generation_unsupported(self, case: Any, precision: Precision) -> str | None:
        from torchparity.backends.onnx_generation import generation_unsupported

        return generation_unsupported(self, case, precision)

    def prepare_generation(
        self, model: torch.nn.Module, prompts: Any, max_len: int, ctx: PrepareContext
    ) -> Any:
        """The past-kv-io graph in a session with the forward cells' options
        (backends/onnx_generation.py)."""
        from torchparity.backends.onnx_generation import prepare_onnx_generation

        level = str(ctx.options.get("graph_optimization", "all"))
        intra = int(ctx.options.get("intra_op_threads", torch.get_num_threads()))
        inter = int(ctx.options.get("inter_op_threads", torch.get_num_interop_threads()))
        spinning = str(ctx.options.get("allow_spinning", "0"))
        provider = PROVIDERS[ctx.cell.device]
        load = _session_loader(ctx, level, (intra, inter, spinning), provider)
        return prepare_onnx_generation(model, ctx, load)


def ort_recipe(mode: str) -> str:
    """What ``ort_quantize`` does for ``mode``, as the row records it."""
    if mode == "dynamic":
        return "quantize_dynamic(per_channel=True, weight_type=QInt8)"
    return (
        "quantize_static(QDQ, per_channel=True, weight_type=QInt8 symmetric, "
        "activation_type=QInt8 asymmetric, MinMax)"
    )


def ort_quantize(source: Path, target: Path, mode: str, calibration: list[tuple]) -> None:
    """ONNX Runtime's own quantizer on an fp32 model, calibrated (static) on ``calibration``."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    logging.getLogger("root").setLevel(logging.ERROR)  # the quantizer logs each node it skips
    if mode == "dynamic":
        quantize_dynamic(source, target, per_channel=True, weight_type=QuantType.QInt8)
        return
    import onnxruntime as ort

    names = [i.name for i in ort.InferenceSession(str(source)).get_inputs()]

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(
                [
                    {n: x.detach().cpu().numpy() for n, x in zip(names, b, strict=True)}
                    for b in calibration
                ]
            )

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    quantize_static(
        source,
        target,
        Batches(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
    )


def _dtype_refusal(exc: Exception, provider: str, dtype: torch.dtype) -> Exception | None:
    """onnx's shape inference rejecting a bf16 op (Conv, LSTM at the exporter's
    opset) before ORT sees the graph, said as ORT's own refusal is: the same
    reason whichever library meets the dtype first."""
    line = next((x for x in str(exc).splitlines() if "unsupported type: tensor(" in x), None)
    if line is None:
        return None
    return NotImplementedError(
        f"{provider} has no {dtype} kernel: onnx shape inference rejects the graph first: "
        f"{line.strip()[:300]}"
    )


def _session_loader(
    ctx: PrepareContext, level_name: str, thread_pools: tuple[int, int, str], provider: str
) -> Callable[[Path], Any]:
    """``load(path)``: check the .onnx file and open an InferenceSession on it.
    ``thread_pools``: intra-op threads, inter-op threads, allow_spinning ("0"/"1")."""
    import onnx
    import onnxruntime as ort

    def load(path: Path) -> ort.InferenceSession:
        model = onnx.load(str(path))  # a torn file fails here and is rebuilt
        onnx.checker.check_model(model)
        ctx.notes["opset"] = next(
            (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None
        )
        options = ort.SessionOptions()
        options.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[level_name]
        options.intra_op_num_threads, options.inter_op_num_threads, spinning = thread_pools
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # errors only: warnings would flood the console
        try:
            return ort.InferenceSession(str(path), options, providers=[provider])
        except Exception as exc:
            missing = re.search(r"Could not find an implementation for .*", str(exc))
            if missing:  # say which dtype lacks kernels, not only which node
                raise NotImplementedError(
                    f"{provider} has no {ctx.precision.dtype} kernel: {missing.group(0)}"
                ) from None  # the message carries ORT's line; the chain would repeat it
            raise

    return load


def _host_call(
    session: Any, names: list[str], bf16_outputs: set[int], device: torch.device
) -> Callable[..., list[torch.Tensor]]:
    """A call through host memory: inputs to numpy (bf16 as OrtValues of its
    bits), outputs back to torch tensors on ``device``."""

    def call(*inputs: Any) -> list[torch.Tensor]:
        # Constant inputs (a list of ints) are in the graph, not fed: tensors only.
        host = [x.detach().cpu().contiguous() for x in inputs if isinstance(x, torch.Tensor)]
        if any(x.dtype == torch.bfloat16 for x in host):
            feed = {n: _ort_value(x) for n, x in zip(names, host, strict=True)}
            raw = [v.numpy() for v in session.run_with_ort_values(None, feed)]
        else:
            raw = session.run(None, {n: x.numpy() for n, x in zip(names, host, strict=True)})
        return [
            torch.from_numpy(a.view(np.int16)).view(torch.bfloat16).to(device)
            if i in bf16_outputs
            else torch.from_numpy(a).to(device)
            for i, a in enumerate(raw)
        ]

    return call


def _io_bound(session: Any, names: list[str], probe: list[torch.Tensor]) -> Callable[..., Any]:
    """CUDA: bind device tensors to the session's inputs and outputs (I/O
    binding), so no call copies through the host. Output buffers are shaped
    after a first host-path call (``probe``) and reused: each call returns the
    same tensors, overwritten."""
    outputs = [torch.empty_like(t) for t in probe]
    output_names = [o.name for o in session.get_outputs()]
    binding = session.io_binding()

    def numpy_dtype(t: torch.Tensor) -> Any:
        return torch.empty(0, dtype=t.dtype).numpy().dtype

    for name, buf in zip(output_names, outputs, strict=True):
        binding.bind_output(
            name, "cuda", buf.device.index or 0, numpy_dtype(buf), tuple(buf.shape), buf.data_ptr()
        )

    def call(*inputs: Any) -> list[torch.Tensor]:
        held = [x.contiguous() for x in inputs if isinstance(x, torch.Tensor)]  # alive during run
        for name, x in zip(names, held, strict=True):
            binding.bind_input(
                name, "cuda", x.device.index or 0, numpy_dtype(x), tuple(x.shape), x.data_ptr()
            )
        session.run_with_iobinding(binding)
        return list(outputs)

    return call


BACKEND = OnnxRuntimeBackend(
    "onnxruntime",
    dynamo=True,
    description="torch.onnx.export(dynamo=True) -> onnx.checker -> onnxruntime.InferenceSession",
    quantized_modes=("static", "dynamic"),
)
