"""TorchScript, the ``script`` route: torch.jit.script, then the deployed form
(torch.jit.save to a file, torch.jit.load back) is what runs, since that file
is what a C++ or mobile application executes.

Options: ``freeze=true`` (torch.jit.freeze), ``optimize=true``
(torch.jit.optimize_for_inference, which freezes too).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.jit._recursive
import torch.jit._state

from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision
from torchparity.backends.artifacts import artifact_key, load_or_build
from torchparity.backends.base import Backend, PrepareContext
from torchparity.backends.flat import flat_outputs
from torchparity.backends.options import BackendOption, truthy

T = TypeVar("T")

OPTIONS = {
    "freeze": BackendOption("torch.jit.freeze the module", "bool"),
    "optimize": BackendOption("torch.jit.optimize_for_inference", "bool"),
}


class TorchScriptBackend(Backend):
    """Scripted (``route="script"``) or traced (``route="trace"``) TorchScript."""

    returns_flat_leaves = True  # FlatOutputs: the pipeline names the leaves

    options = OPTIONS
    # Shape mode: scripted or traced as users do (nothing to declare); no
    # input signature in the file to read back.
    shapes = True

    def __init__(self, name: str, route: str, description: str) -> None:
        self.name = name
        self.route = route
        self.description = description

    def supports(self, cell: Cell, precision: Precision) -> str | None:
        if precision.autocast is not None:
            return "autocast is not applied inside a TorchScript artifact; use fp16/bf16"
        return None

    def train_unsupported(self, cell: Cell, precision: Precision) -> str | None:
        if self.route != "script":
            return "a traced graph is inference only here; train through torchscript (script)"
        return self.supports(cell, precision)

    trains = True

    def train_forward(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        """torch.jit.script of the module, kept in memory (training runs in
        Python; the saved artifact is an inference concern). Autograd runs
        through the scripted graph; the scripted module shares the module's
        parameter tensors, so the optimizer trains it."""
        ctx.notes["route"] = self.route
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self._convert(module, example_inputs)

    def _convert(self, module: torch.nn.Module, example_inputs: tuple) -> torch.jit.ScriptModule:
        if self.route == "script":
            # The model itself is scripted; its dict output comes back as a dict.
            try:
                return torch.jit.script(module)
            except Exception:
                # A failed script leaves half-compiled types behind, and the next
                # cell of the same class would fail with "Can't redefine method".
                torch.jit._recursive.concrete_type_store = torch.jit._recursive.ConcreteTypeStore()
                torch.jit._state._clear_class_state()
                raise
        # Tracing records Python, so the flattening wrapper traces away.
        wrapped = flat_outputs(module, len(example_inputs))
        traced = torch.jit.trace(wrapped, example_inputs, check_trace=False)
        if not isinstance(traced, torch.jit.ScriptModule):  # a module traces to a module
            raise TypeError(f"torch.jit.trace returned {type(traced).__name__}, not a module")
        return traced

    def artifact(
        self,
        module: torch.nn.Module,
        example_inputs: tuple,
        ctx: PrepareContext,
        load: Callable[[Path], T],
    ) -> T:
        """The saved TorchScript file for the cell, from the cache or built,
        passed through ``load`` (which must fail on a torn file). Shared with
        torchscript-cpp, which hands the same file to the native runner."""
        freeze, optimize = truthy(ctx.options.get("freeze")), truthy(ctx.options.get("optimize"))
        ctx.notes["route"] = self.route
        ctx.notes["frozen"] = freeze or optimize
        ctx.notes["optimized_for_inference"] = optimize

        def build(path: Path) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                converted = self._convert(module, example_inputs)
                if optimize:
                    converted = torch.jit.optimize_for_inference(converted.eval())
                elif freeze:
                    converted = torch.jit.freeze(converted.eval())
                # Saved in memory, written by Python: torch's file writer aborts the
                # process on a full disk; a Python write raises, naming the cause.
                buffer = io.BytesIO()
                torch.jit.save(converted, buffer)
            path.write_bytes(buffer.getvalue())

        key = artifact_key(ctx, module, [self.route, f"freeze={freeze}", f"optimize={optimize}"])
        return load_or_build(ctx, key, ".pt", build, load)

    @staticmethod
    def load_file(path: Path, device: torch.device) -> torch.jit.ScriptModule:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # A torn or foreign file fails to load here and is rebuilt.
            return torch.jit.load(str(path), map_location=device)

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        device = ctx.device.torch_device()
        loaded = self.artifact(module, example_inputs, ctx, lambda p: self.load_file(p, device))

        def call(*inputs: Any) -> Any:
            return loaded(*inputs)

        return call


BACKEND = TorchScriptBackend(
    "torchscript", "script", "torch.jit.script, saved and loaded back (torch.jit.save/load)"
)
