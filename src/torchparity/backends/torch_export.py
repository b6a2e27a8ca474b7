"""torch.export: torch.export.export, then the ExportedProgram's module runs.
The program is cached with torch.export.save and what runs is always the
program loaded back with torch.export.load (the deployable artifact)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision
from torchparity.backends.artifacts import artifact_key, load_or_build
from torchparity.backends.base import Backend, PrepareContext
from torchparity.backends.flat import FlatOutputs


def export_program(module: torch.nn.Module, example_inputs: tuple) -> torch.export.ExportedProgram:
    """The module, wrapped to return flat tensor leaves, exported on the example inputs."""
    with warnings.catch_warnings():  # advice about the model's code, once per export
        warnings.simplefilter("ignore")
        return torch.export.export(FlatOutputs(module).eval(), tuple(example_inputs))


def autocast_unsupported(precision: Precision) -> str | None:
    if precision.autocast is not None:
        return "autocast is not captured into an exported artifact; use fp16/bf16"
    return None


class ExportBackend(Backend):
    returns_flat_leaves = True  # FlatOutputs: the pipeline names the leaves
    name = "export"
    description = "torch.export.export -> torch.export.save/load -> ExportedProgram.module()"

    def supports(self, cell: Cell, precision: Precision) -> str | None:
        return autocast_unsupported(precision)

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:

        def build(path: Path) -> None:
            torch.export.save(export_program(module, example_inputs), str(path))

        def load(path: Path) -> torch.nn.Module:
            return torch.export.load(str(path)).module()

        program = load_or_build(ctx, artifact_key(ctx, module), ".pt2", build, load)

        def call(*inputs: Any) -> Any:
            return program(*inputs)

        return call


BACKEND = ExportBackend()
