"""Shape mode's side of the backends: how each exporter is told which input
dims are dynamic, the way its users tell it, and how an artifact's own input
signature is read back, so a dim that was asked to be dynamic and came out
fixed is seen (``silent-static``; docs/shapes.md).

- torch.export, the dynamo ONNX exporter and AOTInductor: ``dynamic_shapes``
  with one ``torch.export.Dim(name, min=, max=)`` per declared dim;
- the legacy ONNX exporter: ``dynamic_axes`` by input name (the wrapper's
  parameter names, given to it as ``input_names``);
- TorchScript (script and trace): nothing to declare; the artifact has no
  input signature to read back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from torchparity.cases.shapes import DynamicDim

Shape = list[Any]  # one input's dims: an int when fixed, a name (str) or None when not


def export_dynamic_shapes(dims: Sequence[DynamicDim], count: int) -> tuple[Any, ...]:
    """``dynamic_shapes`` for the flat-output wrapper (backends/flat.py: one
    named parameter per input) called with ``count`` inputs: per input, in
    order, ``{axis: Dim}``, or None."""
    made = {d.name: torch.export.Dim(d.name, min=d.min, max=d.max) for d in dims}
    per: list[dict[int, Any]] = [{} for _ in range(count)]
    for d in dims:
        for index, axis in d.at:
            per[index][axis] = made[d.name]
    return tuple(p or None for p in per)


def onnx_dynamic_axes(
    dims: Sequence[DynamicDim], names: Sequence[str]
) -> dict[str, dict[int, str]]:
    """The legacy exporter's ``dynamic_axes``: input name (``names``, the
    graph's, one per input in order) -> {axis: dim name}."""
    axes: dict[str, dict[int, str]] = {}
    for d in dims:
        for index, axis in d.at:
            axes.setdefault(names[index], {})[axis] = d.name
    return axes


def session_shapes(session: Any) -> list[Shape]:
    """An ONNX Runtime session's graph input shapes (str or None: symbolic)."""
    return [list(i.shape) for i in session.get_inputs()]


def program_shapes(program: torch.export.ExportedProgram) -> list[Shape]:
    """An exported program's user input shapes (a symbol's name where dynamic)."""
    user = set(program.graph_signature.user_inputs)
    shapes: list[Shape] = []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user:
            val = node.meta.get("val")
            dims = getattr(val, "shape", ())
            shapes.append([d if isinstance(d, int) else str(d) for d in dims])
    return shapes


def record_signature(
    notes: dict[str, Any], dims: Sequence[DynamicDim], shapes: list[Shape]
) -> None:
    """The artifact's input signature, and the requested dims it holds fixed,
    into the backend's notes (the row's ``backend_input_signature`` and
    ``backend_static_dims``)."""
    notes["input_signature"] = "; ".join(
        "[" + ", ".join("?" if d is None else str(d) for d in s) + "]" for s in shapes
    )
    fixed = []
    for d in dims:
        for index, axis in d.at:
            found = (
                shapes[index][axis] if index < len(shapes) and axis < len(shapes[index]) else None
            )
            if isinstance(found, int):
                fixed.append(f"{d.name} (input {index} axis {axis}) fixed at {found}")
    notes["static_dims"] = fixed
