"""Localization of a shape cell's silent mismatch: which layer stops agreeing
with eager at the run shape (docs/localization.md, "Shape cells").

A shape cell's artifact is built at the export shape with the case's dynamic
dims declared and run at another shape. Its layer table does the same for
each layer, with localize.py's building blocks:

1. the fp64 reference runs at the export shape and at the run shape with
   hooks on every submodule: each layer's inputs at both. A layer's dynamic
   dims are the axes of its inputs whose sizes differ between the two
   (``dims_between``: named after the case's dim with the same sizes, such as
   ``batch``; a derived one, a flattened batch x seq, gets a name of its own);
2. accumulated error: the model with every layer tapped, built by the
   backend at the export shape with the case's dims declared and run at the
   run shape, each tap against eager's (the model tapped alike) at the run shape;
3. isolated error: each layer alone, built at its export-shape inputs with
   its dims declared, run at its run-shape inputs, against eager of the layer
   on those inputs; the note gives its error at the export shape too (where a
   shape bug still agrees);
4. the culprit is the first layer, in completion order, whose isolated error
   at the run shape exceeds its bound. The model itself is the last row
   (``forward``): the culprit when no submodule is wrong alone, that is, its
   own code outside them (``x.sum(0) / len(x)``).

A layer that cannot be built with dynamic dims (its inputs' ranks differ
between the shapes, a non-tensor argument changes with the shape, two of its
dims share an export size, or the backend refuses it) has no isolated value,
and its note says why; it is never the culprit.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace

import torch
import torch.utils._pytree as pytree

from torchparity._core.errors import first_line
from torchparity.axes.matrix import Cell
from torchparity.backends import get_backend
from torchparity.cases.inputs import cast_inputs
from torchparity.cases.outputs import Flattened
from torchparity.cases.reference import clone_inputs
from torchparity.cases.shapes import (
    DynamicDim,
    describe_sizes,
    dims_between,
    export_sizes,
    run_sizes,
)
from torchparity.cell.context import RunSettings
from torchparity.cell.shapes import point_inputs
from torchparity.diagnose.layer_call import ROOT, callable_layer, layer_module
from torchparity.diagnose.localize import (
    DEFAULT_BUDGET_S,
    CellSetup,
    LayerCall,
    LayerError,
    Localization,
    LocalizeError,
    TappedModule,
    conclude,
    isolate,
    layer_error,
    plain_notes,
    recorded,
    scripted,
    setup_cell,
    shown_layers,
    split_taps,
    tap_errors,
)


@dataclass
class ShapeRun:
    """A shape cell's inputs at both shapes (float64/int64 on CPU) and the
    case's dims, by their (export size, run size)."""

    export_inputs: tuple
    run_inputs: tuple
    dims: tuple[DynamicDim, ...]
    known: dict[tuple[int, int], DynamicDim]
    export_shape: str
    run_shape: str


def shape_run(dims: tuple[DynamicDim, ...], export_inputs: tuple, run_inputs: tuple) -> ShapeRun:
    """The dims' sizes read off both input tuples."""
    sizes = {
        d.name: (
            int(export_inputs[d.at[0][0]].shape[d.at[0][1]]),
            int(run_inputs[d.at[0][0]].shape[d.at[0][1]]),
        )
        for d in dims
    }
    return ShapeRun(
        export_inputs,
        run_inputs,
        dims,
        {sizes[d.name]: d for d in dims},
        describe_sizes({k: v[0] for k, v in sizes.items()}),
        describe_sizes({k: v[1] for k, v in sizes.items()}),
    )


def _nan(note: str) -> LayerError:
    return LayerError(math.nan, math.nan, note)


def _tensors(call: LayerCall) -> tuple:
    """A layer call's tensor inputs, in the order its callable takes them."""
    return callable_layer(torch.nn.Identity(), call.args, call.kwargs)[1]


def _shapes(tensors: tuple) -> str:
    return "; ".join(str(list(t.shape)) for t in tensors)


def model_call(s: CellSetup, inputs: tuple, out: Flattened) -> LayerCall:
    """The model itself as the table's last row (``ROOT``)."""
    args = cast_inputs(clone_inputs(inputs), torch.float64, torch.device("cpu"))
    return LayerCall(ROOT, type(s.module).__name__, args, {}, out, calls=1, depth=0)


def both_shapes(
    s: CellSetup, run: ShapeRun, loc: Localization
) -> tuple[list[LayerCall], dict[str, LayerCall], Flattened]:
    """The layers at the run shape (those shown, then the model itself), the
    export shape's calls by path, and the reference's output at the run shape."""
    at_export, export_out = recorded(s, run.export_inputs)
    at_run, run_out = recorded(s, run.run_inputs)
    layers = [*shown_layers(at_run, loc), model_call(s, run.run_inputs, run_out)]
    by_path = {c.path: c for c in at_export}
    by_path[ROOT] = model_call(s, run.export_inputs, export_out)
    return layers, by_path, run_out


def _as_expected(flat: list[torch.Tensor], like: Flattened) -> Flattened:
    names = like.names if len(like.names) == len(flat) else [str(i) for i in range(len(flat))]
    return Flattened(names, list(flat), [])


def shape_accumulated(
    s: CellSetup, run: ShapeRun, layers: list[LayerCall], ref_out: Flattened, loc: Localization
) -> dict[str, LayerError]:
    """Each layer's error in the cell's own artifact (taps; built at the export
    shape, run at the run shape) against eager's taps there, or {} with a note."""
    if scripted(s.ctx.backend):
        loc.notes.append(
            "accumulated: not tapped (a scripted TorchScript graph runs no module hooks); "
            "isolated errors only"
        )
        return {}
    subs = [c for c in layers if c.path != ROOT]
    tapped = TappedModule(copy.deepcopy(s.module), [c.path for c in subs])
    try:
        expected, _ = s.run(tapped, run.run_inputs, "", backend=get_backend("eager"))
        prepared, ctx = s.prepare(tapped, run.export_inputs, "", dynamic=run.dims)
        flat = s.call(prepared, run.run_inputs)
    except Exception as exc:  # noqa: BLE001 - a backend that cannot take taps is a finding
        loc.notes.append(
            f"accumulated: the tapped model (built at {run.export_shape}, run at "
            f"{run.run_shape}) failed in {s.ctx.cell.backend}: {first_line(exc)}"
        )
        return {}
    loc.backend_notes = plain_notes(ctx)
    parts = split_taps(expected, ref_out, subs)
    if parts is None:
        loc.notes.append("accumulated: eager's tapped model returned other outputs than the taps")
        return {}
    eager_layers = [
        replace(c, outputs=_as_expected(p, c.outputs))  # type: ignore[arg-type]
        for c, p in zip(subs, parts[1:], strict=True)
    ]
    out = tap_errors(s, flat, eager_layers, _as_expected(parts[0], ref_out), loc)
    if loc.tapped_rel_l2 is not None and loc.tapped_share is not None:
        out[ROOT] = LayerError(loc.tapped_rel_l2, loc.tapped_share)
    return out


def changed_constants(export: LayerCall, run: LayerCall) -> str:
    """Why a layer's non-tensor arguments keep it from being built once for
    both shapes ("" when they are the same at both)."""
    a, spec_a = pytree.tree_flatten((export.args, export.kwargs))
    b, spec_b = pytree.tree_flatten((run.args, run.kwargs))
    keep_a = [x for x in a if not isinstance(x, torch.Tensor)]
    keep_b = [x for x in b if not isinstance(x, torch.Tensor)]
    if spec_a != spec_b or keep_a != keep_b:
        return (
            "not built with dynamic dims: its non-tensor arguments change with the shape "
            f"({keep_a} at the export shape, {keep_b} at the run shape)"
        )
    return ""


def _export_note(
    s: CellSetup, module: torch.nn.Module, prepared: object, tensors: tuple, path: str
) -> str:
    """The artifact's error at the export shape (where it was built) against eager there."""
    try:
        actual = s.call(prepared, tensors)
        expected, _ = s.run(module, tensors, path, backend=get_backend("eager"))
    except Exception as exc:  # noqa: BLE001 - the raise at the export shape is the finding
        return f"at the export shape it raised: {first_line(exc)}"
    err = layer_error(actual, _as_expected(expected, Flattened([], [])), s.bound)
    return f"at the export shape {err.share:.3g} of its bound"


def isolated_shape(
    s: CellSetup, run: ShapeRun, call: LayerCall, export: LayerCall | None
) -> LayerError:
    """The layer alone, built at its export-shape inputs with its dims
    declared, run at its run-shape inputs, against eager on those inputs."""
    if export is None:
        return _nan("not built alone: it did not run at the export shape")
    built = callable_layer(layer_module(s.module, call.path), export.args, export.kwargs)[0]
    export_tensors, run_tensors = _tensors(export), _tensors(call)
    try:
        dims = layer_dims(run, export, call)
    except ValueError as exc:
        return _nan(str(exc))
    try:
        prepared, ctx = s.prepare(built, export_tensors, call.path, dynamic=dims)
    except Exception as exc:  # noqa: BLE001 - a refusal to build is the layer's finding
        return _nan(
            f"loud-error: {s.ctx.cell.backend} refused to build it at the export shape "
            f"with {_declared(dims)}: {first_line(exc)}"
        )
    try:
        actual = s.call(prepared, run_tensors)
    except Exception as exc:  # noqa: BLE001 - the raise at the run shape is the layer's finding
        return _nan(f"loud-error at the run shape ({_declared(dims)}): {first_line(exc)}")
    expected, _ = s.run(built, run_tensors, call.path, backend=get_backend("eager"))
    err = layer_error(actual, _as_expected(expected, call.outputs), s.bound)  # type: ignore[arg-type]
    static = ctx.notes.get("static_dims")
    notes = [
        err.note,
        _declared(dims),
        f"the artifact holds {'; '.join(static)}" if static else "",
        _export_note(s, built, prepared, export_tensors, call.path),
    ]
    err.note = "; ".join(n for n in notes if n)
    return err


def _declared(dims: tuple[DynamicDim, ...]) -> str:
    if not dims:
        return "no input dim changes size"
    return "declared " + "; ".join(d.describe() for d in dims)


def layer_dims(run: ShapeRun, export: LayerCall, call: LayerCall) -> tuple[DynamicDim, ...]:
    """The dims of a layer's inputs (``ValueError``: why it cannot be declared)."""
    reason = changed_constants(export, call)
    if reason:
        raise ValueError(reason)
    try:
        return dims_between(_tensors(export), _tensors(call), run.known)
    except ValueError as exc:
        raise ValueError(f"not built with dynamic dims: {exc}") from exc


def localize_shape(
    cell: Cell,
    settings: RunSettings,
    export_inputs: tuple,
    run_inputs: tuple,
    budget_s: float = DEFAULT_BUDGET_S,
) -> tuple[Localization, CellSetup, list[LayerCall]]:
    """A shape cell's layer table and culprit; the layers returned are their
    export-shape calls (what a reproducer is built at)."""
    return _localize(setup_cell(cell, settings), export_inputs, run_inputs, budget_s)


def localize_point(
    cell: Cell, settings: RunSettings, budget_s: float = DEFAULT_BUDGET_S
) -> tuple[Localization, CellSetup, list[LayerCall]]:
    """A shape cell rebuilt from the registry (``explain --shape-point``): the
    case's inputs, and the run shape of the cell's point."""
    s = setup_cell(cell, settings)
    dims = s.ctx.case.dynamic
    try:
        sizes = run_sizes(dims, export_sizes(s.inputs, dims), cell.shape_point)
    except ValueError as exc:
        raise LocalizeError(str(exc)) from exc
    run_inputs = point_inputs(s.ctx.case, s.ctx.seed, s.inputs, sizes)
    return _localize(s, s.inputs, run_inputs, budget_s)


def _localize(
    s: CellSetup, export_inputs: tuple, run_inputs: tuple, budget_s: float
) -> tuple[Localization, CellSetup, list[LayerCall]]:
    """The table of the set-up cell ``s`` between the two input tuples."""
    began, cell = time.perf_counter(), s.ctx.cell
    if s.ctx.precision.quant is not None:
        raise LocalizeError("int8 shape cells are not localized (docs/localization.md)")
    run = shape_run(tuple(s.ctx.case.dynamic), export_inputs, run_inputs)
    loc = Localization(cell, bound=s.bound)
    loc.shape = {"export_shape": run.export_shape, "run_shape": run.run_shape}
    loc.notes.append(
        f"shape cell: each layer built at the export shape ({run.export_shape}) with its "
        f"inputs' dynamic dims declared, run at {run.run_shape}, against eager there"
    )
    layers, at_export, ref_out = both_shapes(s, run, loc)
    acc = shape_accumulated(s, run, layers, ref_out, loc)
    iso = isolate(layers, acc, budget_s, lambda c: isolated_shape(s, run, c, at_export.get(c.path)))
    conclude(loc, layers, acc, iso, budget_s)
    if loc.culprit is not None:
        _culprit_shape(
            loc, run, at_export[loc.culprit], next(c for c in layers if c.path == loc.culprit)
        )
    loc.seconds = time.perf_counter() - began
    return loc, s, [at_export.get(c.path, c) for c in layers]


def _culprit_shape(loc: Localization, run: ShapeRun, export: LayerCall, call: LayerCall) -> None:
    """The culprit's input shapes at both shapes and its dims (the reproducer's)."""
    loc.culprit_dims = layer_dims(run, export, call)
    loc.shape["culprit_export_inputs"] = _shapes(_tensors(export))
    loc.shape["culprit_run_inputs"] = _shapes(_tensors(call))
    loc.shape["culprit_dims"] = "; ".join(d.describe() for d in loc.culprit_dims)
