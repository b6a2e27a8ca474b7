"""Models with a divergence planted in a known layer, and a backend that plants
one, for validating localization (benchmarks/validate_localization.py and
tests/test_localize.py). Load with ``--case-file benchmarks/planted_cases.py``.

- ``planted_overflow``: ``pool`` is a log-sum-exp without the max shift, a real
  fp16 bug: exp overflows fp16 (65504) on these activations while fp32 and the
  fp64 reference are fine. Every backend at fp16 diverges in ``pool``.
- ``planted_logaddexp``: ``gate`` is ``torch.logaddexp`` on values near 100,
  a divergence the fuzzer found in the ONNX exporter (a naive decomposition
  that overflows fp32; docs/fuzzing.md): onnxruntime at fp32 diverges in
  ``gate``, eager and torch.export do not.
- backend ``perturb``: eager, with the output of the submodule named by
  ``--backend-option perturb.target=PATH`` moved by ``perturb.scale`` (default
  0.05) of its RMS in a fixed pattern. It recognises the submodule inside the
  whole model and when localization prepares it alone (``ctx.module_path``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import nn

from torchparity import Backend, PrepareContext, register_backend, register_model


class NaiveLogSumExp(nn.Module):
    """log(sum(exp(t x))) / t over groups of 4, without subtracting the max."""

    def __init__(self, t: float = 16.0) -> None:
        super().__init__()
        self.t = t

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.reshape(x.shape[0], -1, 4) * self.t
        return torch.log(torch.exp(g).sum(-1)) / self.t


class SoftOr(nn.Module):
    """logaddexp of the two halves of the features, scaled up to ~100."""

    def __init__(self, scale: float = 100.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=-1)
        return torch.logaddexp(a * self.scale, b * self.scale) / self.scale


class Planted(nn.Module):
    """features -> norm -> the planted block (named ``name``) -> head."""

    def __init__(self, name: str, block: nn.Module, width: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32))
        self.norm = nn.LayerNorm(32)
        self.block_name = name
        self.add_module(name, block)
        self.head = nn.Sequential(nn.Linear(width, 16), nn.Tanh(), nn.Linear(16, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block = getattr(self, self.block_name)
        return self.head(block(self.norm(self.features(x))))


def _planted_overflow() -> nn.Module:
    return Planted("pool", NaiveLogSumExp(), 8)


def _planted_logaddexp() -> nn.Module:
    return Planted("gate", SoftOr(), 16)


def _inputs(gen: Any, batch: int) -> tuple:
    return (gen.normal(batch, 16),)


register_model(
    "planted_overflow",
    _planted_overflow,
    _inputs,
    batch=8,
    suites=["planted"],
    description="fp16 overflow planted in 'pool' (log-sum-exp without the max shift)",
)
register_model(
    "planted_logaddexp",
    _planted_logaddexp,
    _inputs,
    batch=8,
    suites=["planted"],
    description="ONNX exporter's logaddexp overflow planted in 'gate'",
)


class PerturbBackend(Backend):
    name = "perturb"
    description = "test: eager with one submodule's output perturbed (perturb.target=PATH)"
    supports_autocast = False
    options = {
        "target": "module path of the submodule to perturb",
        "scale": "perturbation, relative to the output's RMS (default 0.05)",
    }

    def prepare(self, module: nn.Module, example_inputs: tuple, ctx: PrepareContext) -> Any:
        target = str(ctx.options.get("target", ""))
        scale = float(ctx.options.get("scale", 0.05))
        for name, sub in module.named_modules():
            full = ".".join(p for p in (ctx.module_path, name) if p)
            # Inside wrappers (the pipeline's, localization's) paths gain a prefix.
            if target and (
                full == target
                or full.endswith("." + target)
                or (not name and ctx.module_path == target)
            ):
                sub.register_forward_hook(lambda m, a, out: _perturb(out, scale), prepend=True)
                break

        def call(*inputs: Any) -> Any:
            return module(*inputs)

        return call


def _perturb(out: Any, scale: float) -> Any:
    def move(t: Any) -> Any:
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.numel() == 0:
            return t
        pattern = torch.cos(torch.arange(t.numel(), dtype=torch.float64) * 1.7).reshape(t.shape)
        rms = t.double().pow(2).mean().sqrt()
        return (t.double() + scale * rms * pattern).to(t.dtype)

    return pytree.tree_map(move, out)


register_backend(PerturbBackend())
