"""A user's int8 backend with a planted fault, loaded with --plugin like any
user backend: the quantized reference's program, except that the quantize
after the layer named by ``--backend-option int8-zp-fault.target=PATH`` uses
its zero point plus one while the dequantize after it keeps the model's: the
layer's output moves up by one quantization step, as a runtime that mixes up
a zero point would. It recognises the layer inside the whole model and when
localization prepares it alone (``ctx.module_path``)."""

from __future__ import annotations

import copy
from typing import Any

import torch

from torchparity import Backend, PrepareContext, register_backend
from torchparity.backends.quantize import quantized_for

LAYER_OPS = ("linear", "conv1d", "conv2d", "conv_transpose2d", "addmm", "mm")


def _layer_path(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    return str(list(stack.values())[-1][0]) if stack else ""


def _output_quantize(node: torch.fx.Node) -> torch.fx.Node | None:
    """The first quantize_per_tensor downstream of ``node`` along single users."""
    for _ in range(4):
        users = list(node.users)
        if not users:
            return None
        node = users[0]
        if "quantize_per_tensor" in str(node.target) and "dequantize" not in str(node.target):
            return node
    return None


def plant(graph: torch.fx.GraphModule, target: str, whole_layer: bool) -> int:
    """Add one to the zero point of the quantize after ``target``'s layer op
    (the first layer op when ``whole_layer``: the module is that layer alone);
    how many quantize nodes changed."""
    changed = 0
    for node in list(graph.graph.nodes):
        op = str(getattr(node.target, "__name__", node.target))
        if node.op != "call_function" or not any(op.startswith(k) for k in LAYER_OPS):
            continue
        path = _layer_path(node)
        if not (whole_layer or path == target or path.endswith("." + target)):
            continue
        quant = _output_quantize(node)
        if quant is not None:
            args = list(quant.args)
            args[2] = int(args[2]) + 1
            quant.args = tuple(args)
            changed += 1
        if whole_layer:
            break
    graph.recompile()
    return changed


class ZeroPointFault(Backend):
    name = "int8-zp-fault"
    description = "test: the quantized program with one layer's output zero point off by one"
    quantized_modes = ("static",)
    options = {"target": "module path of the layer whose output quantize is off by one"}

    def prepare(self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext) -> Any:
        if ctx.precision.quant is None:
            return module
        program = copy.deepcopy(quantized_for(module, example_inputs, ctx).module)
        target = str(ctx.options.get("target", ""))
        ctx.notes["planted"] = plant(program, target, whole_layer=ctx.module_path == target)
        return program


register_backend(ZeroPointFault())
