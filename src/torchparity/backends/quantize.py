"""int8 quantization, shared by every backend that serves the int8 precisions.

The pt2e flow, as a user deploying to ExecuTorch runs it: torch.export ->
XNNPACKQuantizer annotations (per-channel symmetric int8 weights; int8
per-tensor affine activations, calibrated for ``int8-static``, computed per
call for ``int8-dynamic``) -> ``prepare_pt2e`` -> calibration -> ``convert_pt2e``.
The converted module, run in eager, is the **quantized reference**: what the
int8 model means. The eager backend runs it; ExecuTorch lowers it; ONNX
Runtime runs its QDQ export. Every one of them starts from the same
converted program (memoized per process, so the reference and the backend
quantize once), so a difference between them is the runtime's.

Calibration data comes from the case's own input factory: ``CALIBRATION_BATCHES``
independent draws (``calibration-0`` ..), never the evaluated inputs; the
pipeline fills ``PrepareContext.calibration`` with them.
"""

from __future__ import annotations

import functools
import logging
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

from torchparity.backends.base import PrepareContext
from torchparity.backends.torch_export import export_program
from torchparity.cases.cache_keys import module_fingerprint
from torchparity.cases.inputs import tensor_digest

CALIBRATION_BATCHES = 4
INSTALL_HINT = "pip install 'torchparity[int8]'"
QUANTIZER = "XNNPACKQuantizer"
_MEMO_SIZE = 4


def calibration_draw(i: int) -> str:
    """The name of calibration batch ``i``'s independent input draw."""
    return f"calibration-{i}"


@functools.cache  # asked per cell; a failed import is not retried
def missing() -> str | None:
    """Why the pt2e flow cannot run here, or None."""
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import executorch.backends.xnnpack.quantizer.xnnpack_quantizer  # noqa: F401
        import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401
    except ImportError as exc:
        return f"int8 needs torchao and executorch's XNNPACKQuantizer ({INSTALL_HINT}): {exc}"
    except Exception as exc:  # executorch's pybinding links libtorch
        return f"executorch does not load beside torch {torch.__version__}: {exc}"
    return None


@dataclass(frozen=True)
class Recipe:
    """How a model was quantized: what a row records, and part of every artifact key."""

    mode: str  # static or dynamic
    quantizer: str
    weights: str
    activations: str
    weight_observer: str
    act_observer: str
    calibration_batches: int

    def columns(self) -> dict[str, Any]:
        return {
            "quant_mode": self.mode,
            "quant_quantizer": self.quantizer,
            "quant_weights": self.weights,
            "quant_activations": self.activations,
            "quant_weight_observer": self.weight_observer,
            "quant_act_observer": self.act_observer,
            "quant_calibration_batches": self.calibration_batches,
        }

    def key(self) -> str:
        return "|".join(f"{k}={v}" for k, v in self.columns().items())


def _spec_text(spec: Any) -> str:
    scheme = str(spec.qscheme).replace("torch.", "").replace("_", "-")
    return f"{str(spec.dtype).replace('torch.', '')} [{spec.quant_min}, {spec.quant_max}] {scheme}"


def _observer(spec: Any) -> str:
    ctr = spec.observer_or_fake_quant_ctr
    partial = getattr(ctr, "p", None)
    return partial.func.__name__ if partial is not None else getattr(ctr, "__name__", repr(ctr))


def _config(mode: str) -> Any:
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        get_symmetric_quantization_config,
    )

    return get_symmetric_quantization_config(is_per_channel=True, is_dynamic=mode == "dynamic")


def recipe(mode: str, batches: int) -> Recipe:
    """The recipe of ``mode``, read from the quantizer's own configuration."""
    config = _config(mode)
    act = config.input_activation
    return Recipe(
        mode=mode,
        quantizer=f"{QUANTIZER}(get_symmetric_quantization_config(is_per_channel=True, "
        f"is_dynamic={mode == 'dynamic'}))",
        weights=_spec_text(config.weight),
        activations=_spec_text(act) + (" per call" if act.is_dynamic else " calibrated"),
        weight_observer=_observer(config.weight),
        act_observer=_observer(act),
        calibration_batches=batches,
    )


@dataclass
class Quantized:
    """A converted model: returns the flat tuple of the model's tensor leaves."""

    module: torch.fx.GraphModule
    recipe: Recipe
    calibration_digest: str
    # Each output leaf's quantization step (the scale of the dequantize that
    # produces it), None where the graph leaves that output in float.
    output_steps: list[float | None]
    # How many (de)quantize nodes the conversion put in: 0 when the quantizer
    # annotated no op of the model, and the cell is no int8 test.
    quantize_nodes: int = 0

    def key(self) -> list[str]:
        """Facts an artifact built from this program is keyed by."""
        return [self.recipe.key(), f"calibration={self.calibration_digest}"]


_DEQUANTIZE = ("dequantize_per_tensor", "dequantize_per_channel")


def output_steps(graph: torch.fx.GraphModule) -> list[float | None]:
    """The quantization step of each graph output: a per-tensor dequantize's scale."""
    out = next(n for n in graph.graph.nodes if n.op == "output")
    leaves = out.args[0] if isinstance(out.args[0], list | tuple) else [out.args[0]]
    steps: list[float | None] = []
    for node in leaves:
        name = str(getattr(node, "target", ""))
        scale = node.args[1] if isinstance(node, torch.fx.Node) and len(node.args) > 1 else None
        if "dequantize_per_tensor" in name and isinstance(scale, float | int):
            steps.append(float(scale))
        else:
            steps.append(None)
    return steps


def quantize_nodes(graph: torch.fx.GraphModule) -> int:
    """The converted graph's quantize, dequantize and choose-qparams nodes."""
    return sum(
        1
        for n in graph.graph.nodes
        if n.op == "call_function" and any(w in str(n.target) for w in ("quantize", "qparams"))
    )


def quantize(
    module: torch.nn.Module, example_inputs: tuple, calibration: list[tuple], mode: str
) -> Quantized:
    """``module`` (fp32) through the pt2e flow, calibrated on ``calibration``."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if not calibration:
        raise ValueError("int8 quantization needs calibration batches (none were given)")
    quantizer = XNNPACKQuantizer().set_global(_config(mode))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_program(module, example_inputs).module()
        prepared = prepare_pt2e(graph, quantizer)  # type: ignore[arg-type]
        with torch.no_grad():
            for batch in calibration:  # dynamic: the weight observers still need a call
                prepared(*batch)
        converted = convert_pt2e(prepared)
    # Exporting it again (ExecuTorch, ONNX) wraps it and calls eval(), which a
    # converted module refuses unless told that eval() means its eval form.
    allow_exported_model_train_eval(converted)
    return Quantized(
        converted,
        recipe(mode, len(calibration)),
        tensor_digest([x for b in calibration for x in b if isinstance(x, torch.Tensor)]),
        output_steps(converted),
        quantize_nodes(converted),
    )


_MEMO: OrderedDict[str, Quantized] = OrderedDict()


def quantized_for(module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext) -> Quantized:
    """The cell's converted program (``ctx.precision.quant``, ``ctx.calibration``),
    memoized per process: the quantized reference and the backend share it.
    Never modify it; a consumer that changes it works on a copy."""
    mode = ctx.precision.quant
    if mode is None:
        raise ValueError(f"{ctx.precision.name} is not an int8 precision")
    tensors = [x for x in example_inputs if isinstance(x, torch.Tensor)]
    calib = [x for b in ctx.calibration for x in b if isinstance(x, torch.Tensor)]
    key = "|".join(
        [
            ctx.cell.case,
            ctx.module_path,
            mode,
            module_fingerprint(module),
            tensor_digest(tensors),
            tensor_digest(calib),
        ]
    )
    if key not in _MEMO:
        _MEMO[key] = quantize(module, example_inputs, list(ctx.calibration), mode)
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    _MEMO.move_to_end(key)
    return _MEMO[key]
