"""The minimal reproducer of a localized cell: the culprit submodule's captured
inputs (``-inputs.npz``: float64/int64 arrays, no pickle) and a small case
file (``-repro.py``) that registers just that submodule as a model case, so

    torchparity run --case-file localization/<cell>-repro.py --case <case>.<path> \\
        --backend B --precision P --device D

runs it alone (a user's own case needs its ``--case-file``/``--plugin`` first).
A shape cell's culprit is saved at the export shape with the dims its inputs
change in declared, and runs with ``--mode shape``. The module is rebuilt
from the case registry with the run's seed (the same weights); nothing is
unpickled. See docs/localization.md.
"""

from __future__ import annotations

import io
import json
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.utils._pytree as pytree

from torchparity._core.files import atomic_write_bytes, atomic_write_text
from torchparity.cases.case import CASES, register_model
from torchparity.cases.reference import build_module
from torchparity.cases.shapes import DynamicDim
from torchparity.cell.context import CellContext
from torchparity.diagnose.layer_call import callable_layer, layer_module

_CONSTANTS = (type(None), bool, int, float, str)


class ReproducerError(Exception):
    """The culprit's inputs cannot be saved without pickle (an object argument)."""


def layer_case_name(case: str, path: str) -> str:
    return f"{case}.{path}"


def _inputs_npz(path: Path, tensors: list[torch.Tensor]) -> None:
    arrays = {}
    for i, t in enumerate(tensors):
        t = t.detach().cpu()
        if t.dtype == torch.bool or t.dtype.is_complex:
            arrays[f"in{i}"] = t.numpy()
        else:
            arrays[f"in{i}"] = t.to(torch.float64 if t.is_floating_point() else torch.int64).numpy()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def _origin(case: Any) -> str:
    """The options that register ``case`` again: its case file or plugin module
    (nothing for a built-in case, which comes through the entry point)."""
    if case.source.endswith(".py") and Path(case.source).is_file():  # a --case-file's path
        return f"--case-file {shlex.quote(case.source)} "
    module = sys.modules.get(case.source)
    if case.source.startswith(("suites.", "torchparity.suites.")) or module is None:
        return ""
    file = getattr(module, "__file__", None)
    if case.source.startswith("torchparity_user_") and file:
        return f"--case-file {shlex.quote(str(file))} "
    return f"--plugin {shlex.quote(case.source)} "


def _constants(call: Any) -> tuple[list[Any], list[Any], list[int], Any]:
    """The call's leaves, those leaves with tensors as None, the tensor slots, and the spec."""
    leaves, spec = pytree.tree_flatten((call.args, call.kwargs))
    constants = []
    for x in leaves:
        if isinstance(x, torch.Tensor):
            constants.append(None)
        elif isinstance(x, _CONSTANTS):
            constants.append(x)
        else:
            raise ReproducerError(
                f"{call.path} takes a {type(x).__name__} argument; "
                "it cannot be saved without pickle"
            )
    slots = [i for i, x in enumerate(leaves) if isinstance(x, torch.Tensor)]
    return leaves, constants, slots, spec


def _shape_text(loc: Any) -> str:
    """A shape cell's two shapes, as the reproducer's docstring gives them."""
    shape = getattr(loc, "shape", None) or {}
    if not shape:
        return ""
    return (
        f"\nBuilt at the export shape ({shape.get('export_shape')}: its inputs "
        f"{shape.get('culprit_export_inputs')}) with {shape.get('culprit_dims') or 'no dim'} "
        f"declared dynamic,\nit disagrees with eager at the run shape "
        f"({shape.get('run_shape')}: its inputs {shape.get('culprit_run_inputs')}).\n"
    )


def write(rd: Any, ctx: CellContext, call: Any, loc: Any) -> dict[str, str]:
    """Write the reproducer of ``call`` (the culprit) into ``rd``'s localization/;
    returns the file names and the command that runs it. A shape cell's
    (``loc.culprit_dims``) registers the layer with those dims, run in shape mode."""
    leaves, constants, slots, spec = _constants(call)
    dims = list(getattr(loc, "culprit_dims", ()) or ())
    cell = loc.cell
    npz = rd.localization_file(cell.id, "-inputs.npz")
    script = rd.localization_file(cell.id, "-repro.py")
    _inputs_npz(npz, [leaves[i] for i in slots])
    name = layer_case_name(cell.case, call.path)
    command = (
        f"torchparity run {_origin(ctx.case)}--case-file {script.name} --suite repro --case {name} "
        f"{'--mode shape ' if dims else ''}"
        f"--backend {cell.backend} --precision {cell.precision} --device {cell.device}"
    )
    dynamic = [{"name": d.name, "at": list(d.at), "min": d.min, "max": d.max} for d in dims]
    text = f'''"""Minimal reproducer generated by torchparity: {call.path} ({call.op}) of
{cell.case} diverges on {cell.backend}/{cell.device}/{cell.precision}.
{_shape_text(loc)}
    {command}

(run it in this directory; a case from a user's case file or plugin needs its
--case-file / --plugin before this one). The inputs are the fp64 reference's
inputs to the layer; the cell casts them to its precision.
"""

from pathlib import Path

from torchparity.diagnose.reproducer import register_layer_case

register_layer_case(
    case={json.dumps(cell.case)},
    path={json.dumps(call.path)},
    seed={int(ctx.seed)},
    inputs=Path(__file__).with_name({json.dumps(npz.name)}),
    spec={json.dumps(pytree.treespec_dumps(spec))},
    constants={json.dumps(json.dumps({"leaves": constants, "slots": slots}))},
    dynamic={json.dumps(json.dumps(dynamic))},
)
'''

    atomic_write_text(script, text)
    return {"script": script.name, "inputs": npz.name, "case": name, "command": command}


def register_layer_case(
    case: str, path: str, seed: int, inputs: Path, spec: str, constants: str, dynamic: str = "[]"
) -> Any:
    """Register ``<case>.<path>``: the submodule ``path`` of ``case``'s model
    (rebuilt with ``seed``) on the saved inputs (called by a reproducer file),
    with ``dynamic`` (JSON: name, at, min, max of each dim) declared for shape mode."""

    with np.load(inputs, allow_pickle=False) as data:
        tensors = [torch.from_numpy(np.array(data[f"in{i}"])) for i in range(len(data.files))]
    saved = json.loads(constants)
    leaves, slots = list(saved["leaves"]), [int(i) for i in saved["slots"]]
    tree = pytree.treespec_loads(spec)

    def structure(values: list[torch.Tensor]) -> tuple[tuple, dict]:
        filled = list(leaves)
        for slot, t in zip(slots, values, strict=True):
            filled[slot] = t
        return pytree.tree_unflatten(filled, tree)

    def make_module() -> torch.nn.Module:
        if case not in CASES:
            raise LookupError(
                f"case {case!r} is not registered; add its --case-file/--plugin first"
            )
        sub = layer_module(build_module(CASES[case], seed), path)
        args, kwargs = structure(tensors)
        return callable_layer(sub, args, kwargs)[0]

    original = CASES.get(case)
    return register_model(
        layer_case_name(case, path),
        make_module,
        lambda gen, batch: tuple(t.clone() for t in tensors),
        suites=["repro"],
        reinit_weights=False,
        tolerances=dict(original.tolerances) if original is not None else None,
        description=f"reproducer: {path} of {case}",
        dynamic=[
            DynamicDim(d["name"], [tuple(p) for p in d["at"]], min=d["min"], max=d["max"])
            for d in json.loads(dynamic)
        ],
    )
