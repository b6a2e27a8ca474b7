"""torch.export: torch.export.export, then the ExportedProgram's module runs.
The program is cached with torch.export.save and what runs is always the
program loaded back with torch.export.load (the deployable artifact)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision
from torchparity.backends import export_generation
from torchparity.backends.artifacts import artifact_key, load_or_build
from torchparity.backends.base import Backend, PrepareContext
from torchparity.backends.dynamic import export_dynamic_shapes, program_shapes, record_signature
from torchparity.backends.flat import flat_outputs


def export_program(
    module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext | None = None
) -> torch.export.ExportedProgram:
    """The module, wrapped to return flat tensor leaves (its inputs named
    after its forward's parameters), exported on the example inputs; with ``ctx.dynamic`` (shape mode) its dims declared as
    ``Dim``s, and the program's own input signature recorded in ``ctx.notes``."""
    dynamic = ctx.dynamic if ctx is not None else ()
    shapes = export_dynamic_shapes(dynamic, len(example_inputs)) if dynamic else None
    with warnings.catch_warnings():  # advice about the model's code, once per export
        warnings.simplefilter("ignore")
        program = torch.export.export(
            flat_outputs(module, len(example_inputs)).eval(),
            tuple(example_inputs),
            dynamic_shapes=shapes,
        )
    if ctx is not None and dynamic:
        record_signature(ctx.notes, dynamic, program_shapes(program))
    return program


def autocast_unsupported(precision: Precision) -> str | None:
    if precision.autocast is not None:
        return "autocast is not captured into an exported artifact; use fp16/bf16"
    return None


class ExportBackend(Backend):
    returns_flat_leaves = True  # FlatOutputs: the pipeline names the leaves
    name = "export"
    description = "torch.export.export -> torch.export.save/load -> ExportedProgram.module()"
    shapes = True  # Dim per dynamic dim; the loaded program's placeholders read back

    generates = True

    def generation_unsupported(self, case: Any, precision: Any) -> str | None:
        return export_generation.generation_unsupported(case, precision)

    def prepare_generation(
        self, model: torch.nn.Module, prompts: Any, max_len: int, ctx: PrepareContext
    ) -> Any:
        return export_generation.prepare_export_generation(model, ctx)

    def supports(self, cell: Cell, precision: Precision) -> str | None:
        return autocast_unsupported(precision)

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:

        def build(path: Path) -> None:
            # In memory first: torch's file writer aborts the process on a full disk.
            buffer = io.BytesIO()
            torch.export.save(export_program(module, example_inputs, ctx), buffer)
            path.write_bytes(buffer.getvalue())

        def load(path: Path) -> torch.nn.Module:
            program = torch.export.load(str(path))
            if ctx.dynamic:  # the signature of what runs, cached or not
                record_signature(ctx.notes, ctx.dynamic, program_shapes(program))
            return program.module()

        program = load_or_build(ctx, artifact_key(ctx, module), ".pt2", build, load)

        def call(*inputs: Any) -> Any:
            return program(*inputs)

        return call


BACKEND = ExportBackend()
