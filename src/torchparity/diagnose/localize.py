"""Localization: for a model cell that diverges, *which layer* (docs/localization.md).

The cell is rebuilt with the pipeline's own building blocks (``build_module``,
``build_inputs``, ``cast_inputs``, ``tolerance_for``, ``prepare_context``,
the backend's ``prepare``), then:

1. the fp64 reference runs once with hooks on every submodule (containers
   aside): each layer's inputs and outputs of its first call, in completion
   order (a child finishes before its parent);
2. **accumulated** error: the cell's model, wrapped so that every layer's
   output is also a model output (``TappedModule``), goes through the
   backend's own ``prepare``; torch.export, ONNX, AOTInductor, traced
   TorchScript and torch.compile capture the hooks while tracing, so each
   tap is named by its module path. Scripted TorchScript cannot (its graph
   has no hooks): the table says so;
3. **isolated** error: one layer alone, prepared by the backend on the
   reference's inputs to it cast to the cell's precision;
4. the **culprit** is the first layer (completion order) whose isolated error
   exceeds its bound: the model policy's relative L2 bound (``tolerance_for``).

An int8 cell is localized against the quantized reference instead: each
layer alone is quantized (calibrated on the reference's inputs to it), run by
the backend and by eager (the quantized reference of that layer), and its
error counted in the layer output's quantization steps against the int8
fidelity bounds (``iso_max_steps``, ``iso_mean_steps``; the share is the worse
of the two). Accumulated errors are not tapped at int8: a tap is one more
output the quantizer would see, so the tapped program is not the cell's.

Cost is bounded: isolated errors are computed first from the first layer whose
accumulated error exceeds its bound, then for the rest while the time budget
lasts; a layer left out says so in its note.

A shape cell is localized by shape_localize.py with these building blocks.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import nn

from torchparity._core.errors import first_line
from torchparity._core.rundir import RunDir
from torchparity.axes.matrix import Cell
from torchparity.backends import get_backend
from torchparity.backends.base import Backend, PrepareContext
from torchparity.backends.quantize import quantized_for
from torchparity.cases.case import CASES
from torchparity.cases.inputs import cast_inputs
from torchparity.cases.outputs import Flattened, flat_leaves, flatten, tensor_leaves
from torchparity.cases.reference import build_inputs, build_module, clone_inputs
from torchparity.cases.shapes import DynamicDim
from torchparity.cell.context import CellContext, RunSettings, precheck, resolve
from torchparity.diagnose import reproducer
from torchparity.diagnose.layer_call import callable_layer, layer_module
from torchparity.verdicts import drift as drift_mod
from torchparity.verdicts import quantized as quant_verdict

CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
MAX_LAYERS = 48  # layers in a table; beyond it, layers with parameters and top blocks win
DEFAULT_BUDGET_S = 60.0
TABLE_COLUMNS = [
    "order",
    "module",
    "op",
    "shape",
    "calls",
    "acc_rel_l2",
    "acc_share",
    "iso_rel_l2",
    "iso_share",
    "iso_max_steps",
    "iso_mean_steps",
    "bound",
    "culprit",
    "note",
]


class LocalizeError(Exception):
    """A cell that cannot be localized (not a model, cannot run here): one line."""


@dataclass
class LayerCall:
    """The first call of one submodule in the fp64 reference."""

    path: str
    op: str
    args: tuple
    kwargs: dict
    outputs: Flattened | None = None
    calls: int = 0
    depth: int = 0
    has_params: bool = False

    @property
    def shape(self) -> str:
        if self.outputs is None or not self.outputs.tensors:
            return ""
        return ", ".join(str(list(t.shape)) for t in self.outputs.tensors[:3]) + (
            ", ..." if len(self.outputs.tensors) > 3 else ""
        )


def _clone_tree(tree: Any) -> Any:
    return pytree.tree_map(lambda x: x.detach().clone() if isinstance(x, torch.Tensor) else x, tree)


def record_reference(model64: nn.Module, inputs64: tuple) -> tuple[list[LayerCall], Flattened]:
    """Every non-container submodule's first call in the fp64 reference (inputs
    and outputs cloned: a later in-place op must not change them), in
    completion order, and the model's output."""
    calls: dict[str, LayerCall] = {}
    order: list[str] = []
    handles = []

    def pre(path: str, module: nn.Module, args: tuple, kwargs: dict) -> None:
        call = calls.get(path)
        if call is None:
            calls[path] = LayerCall(
                path,
                type(module).__name__,
                _clone_tree(args),
                _clone_tree(kwargs),
                depth=path.count(".") + 1,
                has_params=any(True for _ in module.parameters(recurse=False)),
            )
            call = calls[path]
        call.calls += 1

    def post(path: str, module: nn.Module, args: tuple, output: Any) -> None:
        call = calls[path]
        if call.outputs is None:
            out = flatten(output)
            call.outputs = Flattened(
                out.names, [t.detach().clone() for t in out.tensors], out.dropped
            )
            order.append(path)

    for path, module in model64.named_modules():
        if path and not isinstance(module, CONTAINERS):
            handles.append(module.register_forward_pre_hook(partial(pre, path), with_kwargs=True))
            handles.append(module.register_forward_hook(partial(post, path)))
    try:
        with torch.no_grad():
            out = flatten(model64(*clone_inputs(inputs64)))
    finally:
        for h in handles:
            h.remove()
    recorded = [calls[p] for p in order]
    return [c for c in recorded if c.outputs is not None and c.outputs.tensors], out


def select_layers(layers: list[LayerCall], cap: int = MAX_LAYERS) -> list[LayerCall]:
    """At most ``cap`` layers, in completion order: layers with parameters and
    top-level blocks first when there are more."""
    if len(layers) <= cap:
        return layers
    ranked = sorted(
        range(len(layers)),
        key=lambda i: (not layers[i].has_params and layers[i].depth > 1, layers[i].depth, i),
    )
    keep = set(ranked[:cap])
    return [layer for i, layer in enumerate(layers) if i in keep]


class TappedModule(nn.Module):
    """``model`` whose forward returns its output's tensor leaves followed by
    the tensor leaves of each tapped layer's first call (clones: an in-place
    op downstream must not change a tap)."""

    def __init__(self, model: nn.Module, paths: list[str]) -> None:
        super().__init__()
        self.inner = model
        self.paths = list(paths)
        self._taps: dict[str, tuple[torch.Tensor, ...]] = {}
        modules = dict(model.named_modules())
        for path in self.paths:
            modules[path].register_forward_hook(partial(self._tap, path))

    def _tap(self, path: str, module: nn.Module, args: tuple, output: Any) -> None:
        if path not in self._taps:
            self._taps[path] = tuple(t.clone() for t in tensor_leaves(output))

    def forward(self, *inputs: Any) -> tuple[torch.Tensor, ...]:
        self._taps = {}
        out = tensor_leaves(self.inner(*inputs))
        return out + tuple(t for p in self.paths for t in self._taps.get(p, ()))


@dataclass
class LayerError:
    rel_l2: float
    share: float  # of the bound; inf for NaN/inf or integer mismatches
    note: str = ""
    max_steps: float | None = None  # int8 cells: the error in quantization steps
    mean_steps: float | None = None


def layer_error(actual: list[torch.Tensor], expected: Flattened, bound: float) -> LayerError:
    """Worst leaf of a layer's output vs the reference, by the model policy's
    metric (drift.py): relative L2 error over finite positions; NaN/inf where
    the reference has none, a shape or an integer mismatch count as infinite."""
    if len(actual) != len(expected.tensors):
        return LayerError(
            math.inf, math.inf, f"{len(actual)} output tensors, reference {len(expected.tensors)}"
        )
    rel, note = 0.0, ""
    for name, a, e in zip(expected.names, actual, expected.tensors, strict=True):
        a = a.detach().cpu()
        if tuple(a.shape) != tuple(e.shape):
            rel, note = math.inf, f"{name}: shape {list(a.shape)} != reference {list(e.shape)}"
            continue
        if not e.is_floating_point():
            if not torch.equal(a.to(e.dtype), e):
                rel, note = math.inf, f"{name}: integer elements differ"
            continue
        a, e = a.double(), e.double()
        if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(e).all())):
            bad = int(
                (
                    (torch.isnan(a) != torch.isnan(e))
                    | (torch.isinf(a) | torch.isinf(e))
                    & (a != e)
                    & ~(torch.isnan(a) | torch.isnan(e))
                ).sum()
            )
            if bad:
                rel, note = math.inf, f"{name}: NaN/inf at {bad} of {e.numel()} positions"
                continue
            finite = torch.isfinite(e) & torch.isfinite(a)
            a, e = a[finite], e[finite]
        norm = float(e.norm())
        diff = float((a - e).norm())
        rel = max(rel, diff / norm if norm > 0 else (0.0 if diff == 0 else math.inf))
    share = rel / bound if bound > 0 else (0.0 if rel == 0 else math.inf)
    return LayerError(rel, share, note)


@dataclass
class CellSetup:
    """The cell's context (cell/context.py) and its module and inputs, built as
    the pipeline builds them."""

    ctx: CellContext
    module: nn.Module  # as built (float32), never modified
    inputs: tuple  # float64/int64 on CPU
    bound: float  # the model policy's relative L2 bound at the cell's tolerance

    def context(self, path: str) -> PrepareContext:
        """A fresh context without the artifact cache (taps and single layers
        are not the cell's artifact)."""
        ctx = self.ctx.prepare_context("localize", path, None)
        ctx.module_path = path
        return ctx

    def cast(self, inputs: tuple) -> tuple:
        device = self.ctx.device.torch_device()
        return cast_inputs(clone_inputs(inputs), self.ctx.precision.dtype, device)

    def fresh(self, inputs: tuple, dtypes: list[torch.dtype] | None = None) -> tuple:
        """``inputs`` cast to the cell's dtype, or one by one to ``dtypes``
        (what the layer receives under autocast)."""
        if dtypes is None:
            return self.cast(inputs)
        device = self.ctx.device.torch_device()
        return tuple(
            x.to(device, d) if x.is_floating_point() else x.to(device)
            for x, d in zip(inputs, dtypes, strict=True)
        )

    def prepare(
        self,
        module: nn.Module,
        inputs: tuple,
        path: str,
        dtypes: list[torch.dtype] | None = None,
        backend: Backend | None = None,
        dynamic: tuple[DynamicDim, ...] = (),
    ) -> tuple[Any, PrepareContext]:
        """``module`` prepared by the cell's backend (or ``backend``) on
        ``inputs``, with ``dynamic`` declared (shape mode). An int8 cell
        calibrates on the inputs themselves."""
        ctx = self.context(path)
        ctx.dynamic = tuple(dynamic)
        if self.ctx.precision.quant is not None:
            ctx.calibration = (self.cast(inputs),)
        with torch.no_grad():
            prepared = (backend or self.ctx.backend).prepare(
                self.ctx.cast_module(module), self.fresh(inputs, dtypes), ctx
            )
        return prepared, ctx

    def call(
        self,
        prepared: Any,
        inputs: tuple,
        dtypes: list[torch.dtype] | None = None,
        backend: Backend | None = None,
    ) -> list[torch.Tensor]:
        """The tensor leaves of ``prepared`` called on ``inputs`` (cast as in ``fresh``)."""
        with torch.no_grad():
            out = (backend or self.ctx.backend).run(prepared, self.fresh(inputs, dtypes))
        self.ctx.device.synchronize()
        return [t for t in flat_leaves(out) if isinstance(t, torch.Tensor)]

    def run(
        self,
        module: nn.Module,
        inputs: tuple,
        path: str,
        dtypes: list[torch.dtype] | None = None,
        backend: Backend | None = None,
    ) -> tuple[list[torch.Tensor], PrepareContext]:
        """``module`` prepared and called on ``inputs``: its tensor leaves."""
        prepared, ctx = self.prepare(module, inputs, path, dtypes, backend)
        return self.call(prepared, inputs, dtypes, backend), ctx


def setup_cell(cell: Cell, settings: RunSettings) -> CellSetup:
    case = CASES.get(cell.case)
    if case is None:
        raise LocalizeError(f"case {cell.case!r} is not registered")
    if case.kind != "model":
        raise LocalizeError(f"{cell.case} is an op; localization is for model cells")
    reason = precheck(cell)
    if reason:
        raise LocalizeError(f"the cell cannot run here: {reason}")
    ctx = resolve(cell, settings)
    ctx.configure_device()
    bound = (
        drift_mod.model_limit(ctx.tolerance, ctx.precision.compute_dtype)
        if ctx.precision.quant is None
        else (ctx.tolerance.quant_max_steps or 0.0)  # int8: shares are of the step bounds
    )
    return CellSetup(ctx, build_module(case, ctx.seed), build_inputs(case, ctx.seed), bound)


@dataclass
class Localization:
    """One cell's layer table and verdict."""

    cell: Cell
    layers: list[dict[str, Any]] = field(default_factory=list)
    culprit: str | None = None
    culprit_op: str = ""
    bound: float = 0.0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    tapped_rel_l2: float | None = None  # the tapped model's output error (accumulated run)
    tapped_share: float | None = None
    backend_notes: dict[str, Any] = field(default_factory=dict)
    # Shape cells: export_shape, run_shape, and the culprit's input shapes and
    # dims (the record's fields of the same names; the reproducer's shape mode).
    shape: dict[str, str] = field(default_factory=dict)
    culprit_dims: tuple[DynamicDim, ...] = ()

    def record(self) -> dict[str, Any]:
        return {
            **self.cell.as_dict(),
            **self.shape,
            "cell_id": self.cell.id,
            "culprit": self.culprit,
            "culprit_op": self.culprit_op,
            "bound": self.bound,
            "notes": self.notes,
            "seconds": self.seconds,
            "tapped_rel_l2": self.tapped_rel_l2,
            "tapped_share": self.tapped_share,
            "backend_notes": self.backend_notes,
            "layers": self.layers,
        }

    def table(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.layers, columns=TABLE_COLUMNS)


def scripted(backend: Backend) -> bool:
    return getattr(backend, "route", None) == "script"


def accumulated(
    s: CellSetup, layers: list[LayerCall], ref_out: Flattened, loc: Localization
) -> dict[str, LayerError]:
    """Each layer's error in the cell's own forward (taps), or {} with a note."""
    if scripted(s.ctx.backend):
        loc.notes.append(
            "accumulated: not tapped (a scripted TorchScript graph runs no module hooks); "
            "isolated errors only"
        )
        return {}
    try:
        flat, ctx = s.run(
            TappedModule(copy.deepcopy(s.module), [c.path for c in layers]), s.inputs, ""
        )
    except Exception as exc:  # noqa: BLE001 - a backend that cannot take taps is a finding
        loc.notes.append(
            f"accumulated: the tapped model failed in {s.ctx.cell.backend}: {first_line(exc)}"
        )
        return {}
    loc.backend_notes = plain_notes(ctx)
    out = tap_errors(s, flat, layers, ref_out, loc)
    if s.ctx.backend.name == "compile" and (
        ctx.notes.get("graph_breaks") or ctx.notes.get("fallback")
    ):
        loc.notes.append(
            f"compile: the tapped graph had {ctx.notes.get('graph_breaks', 0)} graph "
            f"break(s){'; ' + str(ctx.notes['fallback']) if ctx.notes.get('fallback') else ''}"
        )
    return out


def plain_notes(ctx: PrepareContext) -> dict[str, Any]:
    """The backend's notes that a record keeps (plain values)."""
    return {k: v for k, v in ctx.notes.items() if isinstance(v, str | int | float | bool)}


def split_taps(
    flat: list[torch.Tensor], ref_out: Flattened, layers: list[LayerCall]
) -> list[list[torch.Tensor]] | None:
    """A tapped model's outputs cut into the model's own, then each layer's;
    None when their count is not the taps'."""
    counts = [len(ref_out.tensors)] + [len(c.outputs.tensors) for c in layers]  # type: ignore[union-attr]
    if len(flat) != sum(counts):
        return None
    parts, at = [], 0
    for n in counts:
        parts.append(flat[at : at + n])
        at += n
    return parts


def tap_errors(
    s: CellSetup,
    flat: list[torch.Tensor],
    layers: list[LayerCall],
    ref_out: Flattened,
    loc: Localization,
) -> dict[str, LayerError]:
    """Each layer's error in a tapped run against ``layers``' outputs, and the
    model's own output error into ``loc``."""
    parts = split_taps(flat, ref_out, layers)
    if parts is None:
        need = len(ref_out.tensors) + sum(len(c.outputs.tensors) for c in layers)  # type: ignore[union-attr]
        loc.notes.append(
            f"accumulated: {s.ctx.cell.backend} returned {len(flat)} tensors where the taps "
            f"need {need}; isolated errors only"
        )
        return {}
    model_err = layer_error(parts[0], ref_out, s.bound)
    loc.tapped_rel_l2, loc.tapped_share = model_err.rel_l2, model_err.share
    return {
        c.path: layer_error(part, c.outputs, s.bound)  # type: ignore[arg-type]
        for c, part in zip(layers, parts[1:], strict=True)
    }


def autocast_dtypes(s: CellSetup, layers: list[LayerCall]) -> dict[str, list[torch.dtype]]:
    """Under autocast a layer receives what upstream ops produced (fp16 from a
    matmul, fp32 from a norm), not the cell's parameter dtype: the dtypes of
    each layer's tensor inputs in an eager forward under the cell's autocast."""
    precision, device = s.ctx.precision, s.ctx.device
    if precision.autocast is None:
        return {}
    seen: dict[str, list[torch.dtype]] = {}
    model = s.ctx.cast_module(s.module)
    modules = dict(model.named_modules())

    def pre(path: str, module: nn.Module, args: tuple, kwargs: dict) -> None:
        leaves = [x for x in pytree.tree_leaves((args, kwargs)) if isinstance(x, torch.Tensor)]
        seen.setdefault(path, [x.dtype for x in leaves])

    for call in layers:
        modules[call.path].register_forward_pre_hook(partial(pre, call.path), with_kwargs=True)
    with torch.no_grad(), torch.autocast(device.torch_device().type, dtype=precision.autocast):
        model(*s.cast(s.inputs))
    return seen


def isolated_one(
    s: CellSetup, call: LayerCall, dtypes: list[torch.dtype] | None = None
) -> LayerError:
    """The layer alone, prepared by the backend, on the reference's inputs to it."""
    sub = layer_module(s.module, call.path)
    module, tensors = callable_layer(sub, call.args, call.kwargs)
    # Captured inputs are fp64 (the reference): cast to the cell's dtype (or autocast's).
    try:
        flat, _ = s.run(module, tensors, call.path, dtypes)
    except Exception as exc:  # noqa: BLE001
        return LayerError(
            math.nan, math.nan, f"{s.ctx.cell.backend} failed on the layer alone: {first_line(exc)}"
        )
    return layer_error(flat, call.outputs, s.bound)  # type: ignore[arg-type]


def isolated_int8(s: CellSetup, call: LayerCall) -> LayerError:
    """An int8 cell's layer alone: the backend against the quantized reference
    of the layer (eager on the same converted program), in quantization steps."""
    sub = layer_module(s.module, call.path)
    module, tensors = callable_layer(sub, call.args, call.kwargs)
    try:
        expected, _ = s.run(module, tensors, call.path, backend=get_backend("eager"))
        actual, _ = s.run(module, tensors, call.path)
        ctx = s.context(call.path)
        ctx.calibration = (s.cast(tensors),)
        steps = quantized_for(s.ctx.cast_module(module), s.cast(tensors), ctx).output_steps
    except Exception as exc:  # noqa: BLE001
        return LayerError(
            math.nan, math.nan, f"{s.ctx.cell.backend} failed on the layer alone: {first_line(exc)}"
        )
    if len(actual) != len(expected):
        return LayerError(math.inf, math.inf, f"{len(actual)} outputs, reference {len(expected)}")
    tol, worst = s.ctx.tolerance, LayerError(0.0, 0.0, max_steps=0.0, mean_steps=0.0)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if not e.is_floating_point():
            continue
        leaf = quant_verdict.QuantLeaf(str(i))
        quant_verdict.fidelity(leaf, a, e, steps[i] if i < len(steps) else None, tol)
        share = quant_verdict.QuantVerdict([leaf], tol).fidelity_share
        rel = layer_error([a], Flattened([str(i)], [e.double()], []), 1.0).rel_l2
        if share >= worst.share:
            worst = LayerError(rel, share, "", leaf.max_steps, leaf.mean_steps)
    return worst


def isolation_order(
    layers: list[LayerCall], acc: dict[str, LayerError], iso: dict[str, LayerError]
) -> int | None:
    """The next layer to isolate: forward from the first layer whose
    accumulated error exceeds its bound until one exceeds alone, then the
    layers before it, then the rest; so the culprit comes early in the budget."""
    first = next((i for i, c in enumerate(layers) if c.path in acc and acc[c.path].share > 1), 0)
    found = any(e.share > 1 for e in iso.values())
    later, earlier = list(range(first, len(layers))), list(range(first))
    order = earlier + later if found else later + earlier
    return next((i for i in order if layers[i].path not in iso), None)


def recorded(s: CellSetup, inputs: tuple) -> tuple[list[LayerCall], Flattened]:
    """``record_reference`` of the cell's model in fp64 on ``inputs``."""
    model64 = copy.deepcopy(s.module).to(torch.float64)
    return record_reference(
        model64, cast_inputs(clone_inputs(inputs), torch.float64, torch.device("cpu"))
    )


def shown_layers(all_layers: list[LayerCall], loc: Localization) -> list[LayerCall]:
    """``select_layers``, with a note when some are left out."""
    layers = select_layers(all_layers)
    if len(layers) < len(all_layers):
        loc.notes.append(
            f"{len(all_layers)} layers; {len(layers)} shown (parameters and top blocks first)"
        )
    return layers


def localize(
    cell: Cell,
    settings: RunSettings,
    budget_s: float = DEFAULT_BUDGET_S,
) -> tuple[Localization, CellSetup, list[LayerCall]]:
    """The cell's layer table and culprit. ``LocalizeError`` when the cell is
    not a model cell or cannot run here."""
    began = time.perf_counter()
    s = setup_cell(cell, settings)
    return localize_built(s, cell, budget_s, began)


def localize_built(
    s: CellSetup, cell: Cell, budget_s: float = DEFAULT_BUDGET_S, began: float | None = None
) -> tuple[Localization, CellSetup, list[LayerCall]]:
    """:func:`localize` over a module and inputs already built (``s``): a
    generate cell hands its divergent decode step here (generate_localize.py)."""
    began = time.perf_counter() if began is None else began
    loc = Localization(cell, bound=s.bound)
    all_layers, ref_out = recorded(s, s.inputs)
    layers = shown_layers(all_layers, loc)
    if not layers:
        loc.notes.append("no submodule produced a tensor: nothing to localize below the model")
    quant = s.ctx.precision.quant is not None
    if quant:
        loc.notes.append(
            "int8: each layer alone against its quantized reference, in quantization steps "
            "(accumulated errors are not tapped: a tap would change the quantized program)"
        )
    acc = {} if quant else accumulated(s, layers, ref_out, loc)
    dtypes = autocast_dtypes(s, layers)
    iso = isolate(
        layers,
        acc,
        budget_s,
        lambda call: (
            isolated_int8(s, call) if quant else isolated_one(s, call, dtypes.get(call.path))
        ),
    )
    conclude(loc, layers, acc, iso, budget_s)
    loc.seconds = time.perf_counter() - began
    return loc, s, layers


def isolate(
    layers: list[LayerCall],
    acc: dict[str, LayerError],
    budget_s: float,
    one: Callable[[LayerCall], LayerError],
) -> dict[str, LayerError]:
    """Isolated errors (``one`` layer at a time) in ``isolation_order``, while
    ``budget_s`` lasts (counted from here: after the tapped run)."""
    iso: dict[str, LayerError] = {}
    began = time.perf_counter()
    while time.perf_counter() - began < budget_s:
        i = isolation_order(layers, acc, iso)
        if i is None:
            break
        iso[layers[i].path] = one(layers[i])
    return iso


def conclude(
    loc: Localization,
    layers: list[LayerCall],
    acc: dict[str, LayerError],
    iso: dict[str, LayerError],
    budget_s: float,
) -> None:
    """The culprit, the table and the notes about what was left out, into ``loc``."""
    loc.culprit = _culprit(layers, iso)
    loc.layers = _rows(layers, acc, iso, loc.culprit, loc.bound)
    skipped = [c.path for c in layers if c.path not in iso]
    if skipped:
        loc.notes.append(f"{len(skipped)} layer(s) not isolated within the {budget_s:g} s budget")
    if loc.culprit is None and any(e.share > 1 for e in acc.values()):
        first = next(c.path for c in layers if c.path in acc and acc[c.path].share > 1)
        loc.notes.append(
            f"no layer exceeds its bound alone; the error accumulates (first over its bound "
            f"with upstream values: {first})"
        )
    if loc.culprit is not None:
        loc.culprit_op = next(c.op for c in layers if c.path == loc.culprit)


def _culprit(layers: list[LayerCall], iso: dict[str, LayerError]) -> str | None:
    """The first layer in completion order whose isolated error exceeds its bound."""
    return next((c.path for c in layers if c.path in iso and iso[c.path].share > 1), None)


def _fmt(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _rows(
    layers: list[LayerCall],
    acc: dict[str, LayerError],
    iso: dict[str, LayerError],
    culprit: str | None,
    bound: float,
) -> list[dict[str, Any]]:
    rows = []
    for i, call in enumerate(layers):
        a, b = acc.get(call.path), iso.get(call.path)
        notes = [
            f"{kind}: {e.note}" for kind, e in (("acc", a), ("iso", b)) if e is not None and e.note
        ]
        if b is None:
            notes.append("isolated: not computed (time budget)")
        if call.calls > 1:
            notes.append(f"called {call.calls} times; first call shown")
        rows.append(
            {
                "order": i,
                "module": call.path,
                "op": call.op,
                "shape": call.shape,
                "calls": call.calls,
                "acc_rel_l2": _fmt(a.rel_l2) if a else None,
                "acc_share": _fmt(a.share) if a else None,
                "iso_rel_l2": _fmt(b.rel_l2) if b else None,
                "iso_share": _fmt(b.share) if b else None,
                "iso_max_steps": _fmt(b.max_steps) if b else None,
                "iso_mean_steps": _fmt(b.mean_steps) if b else None,
                "bound": bound,
                "culprit": call.path == culprit,
                "note": "; ".join(notes),
            }
        )
    return rows


def save(run_dir: Any, loc: Localization, s: CellSetup, layers: list[LayerCall]) -> dict[str, Any]:
    """The table (.csv, .json) and, with a culprit, its reproducer, into ``run_dir``."""

    rd = RunDir(run_dir)
    record = loc.record()
    if loc.culprit is not None:
        call = next(c for c in layers if c.path == loc.culprit)
        try:
            record["reproducer"] = reproducer.write(rd, s.ctx, call, loc)
        except reproducer.ReproducerError as exc:
            record["reproducer_error"] = str(exc)
    paths = rd.write_localization(loc.cell.id, loc.table(), record)
    return {**paths, "record": record}
