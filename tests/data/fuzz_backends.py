"""Deliberately wrong backends (loaded with --case-file / --plugin) that the
fuzzer must catch, and an op with a known-failure mark for one of them.

Each wraps eager and injects one classic deployment bug:
- ``test-ulp``: one output element a few ULP off (a different kernel or FMA);
- ``test-round-away``: torch.round rounds half away from zero (C ``round``)
  instead of half to even, by rewriting the traced graph;
- ``test-nan-number``: NaN outputs become numbers (fast-math / NaN-unsafe max).
"""

from __future__ import annotations

import torch
import torch.fx

from torchparity import Backend, KnownFailure, register_backend, register_op
from torchparity.strategies import elementwise


def _eager_call(module: torch.nn.Module):
    def call(*inputs):
        with torch.inference_mode():
            return module(*inputs)

    return call


class UlpBackend(Backend):
    name = "test-ulp"
    description = "test: first float output element moved 3 ULP up"

    def prepare(self, module, example_inputs, ctx):
        call = _eager_call(module)

        def run(*inputs):
            out = call(*inputs)
            if isinstance(out, torch.Tensor) and out.is_floating_point() and out.numel():
                flat = out.clone().reshape(-1)
                for _ in range(3):
                    flat[0] = torch.nextafter(flat[0], torch.tensor(float("inf"), dtype=out.dtype))
                out = flat.reshape(out.shape)
            return out

        return run


def _round_half_away(x: torch.Tensor) -> torch.Tensor:
    if not x.is_floating_point():  # integers are already round
        return x
    return torch.sign(x) * torch.floor(torch.abs(x) + 0.5)


class RoundAwayBackend(Backend):
    name = "test-round-away"
    description = "test: torch.round lowered to round-half-away-from-zero"

    def prepare(self, module, example_inputs, ctx):
        graph_module = torch.fx.symbolic_trace(module)
        for node in graph_module.graph.nodes:
            if node.op == "call_function" and node.target is torch.round:
                node.target = _round_half_away
        graph_module.recompile()
        return _eager_call(graph_module)


class NanNumberBackend(Backend):
    name = "test-nan-number"
    description = "test: NaN outputs replaced by 0"

    def prepare(self, module, example_inputs, ctx):
        call = _eager_call(module)

        def run(*inputs):
            out = call(*inputs)
            if isinstance(out, torch.Tensor) and out.is_floating_point():
                out = torch.where(torch.isnan(out), torch.zeros_like(out), out)
            return out

        return run


for backend in (UlpBackend(), RoundAwayBackend(), NanNumberBackend()):
    register_backend(backend)


def round_known(x):
    return torch.round(x)


register_op(
    "round_known",
    round_known,
    lambda gen, batch: (gen.normal(3, 4),),
    elementwise(1, ("float",)),
    suites=["fuzz_teeth"],
    known_failures=[
        KnownFailure(
            "rounds half away from zero",
            backend="test-round-away",
            link="https://example.org/round",
        )
    ],
)
