"""ExecuTorch: torch.export -> to_edge_transform_and_lower (XNNPACK partitioner,
or none for the portable kernels) -> to_executorch() -> a .pte program, cached
and sealed like every artifact, loaded with executorch.runtime and run through
its ``forward`` method, as an on-device application would.

Options (``--backend-option executorch.KEY=VALUE``): ``delegate`` (``xnnpack``,
the default, or ``portable``: no delegate, ExecuTorch's portable kernels only).

The .pte is static: it runs at the example inputs' shapes only, and a call at
another shape fails loudly in the runtime (a resize error), never silently.
The row records the delegate, how many of the lowered graph's operator nodes
XNNPACK took (``backend_delegated_nodes`` / ``backend_delegated_share``) and
the executorch version.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision
from torchparity.backends.artifacts import artifact_key, library_version, load_or_build
from torchparity.backends.base import Backend, PrepareContext
from torchparity.backends.torch_export import autocast_unsupported, export_program

DELEGATES = ("xnnpack", "portable")
OPTIONS = {"delegate": "xnnpack (default: XNNPACK delegate) or portable (no delegate)"}
INSTALL_HINT = "pip install 'torchparity[executorch]'"


def _missing() -> str | None:
    try:
        import executorch.exir  # noqa: F401
        import executorch.runtime  # noqa: F401
    except ImportError as exc:
        return f"executorch is not installed ({INSTALL_HINT}): {exc}"
    except Exception as exc:  # the pybinding links libtorch: a torch it was not built for
        return f"executorch does not load beside torch {torch.__version__}: {exc}"
    return None


def _delegation(edge: Any) -> tuple[int, int]:
    """(operator nodes inside XNNPACK delegates, operator nodes in all) of the
    lowered edge program."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(edge.exported_program().graph_module)
    return int(info.num_delegated_nodes), int(
        info.num_delegated_nodes + info.num_non_delegated_nodes
    )


def _lower(module: torch.nn.Module, example_inputs: tuple, delegate: str, notes: dict) -> bytes:
    from executorch.exir import to_edge_transform_and_lower

    partitioners = []
    if delegate == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        partitioners = [XnnpackPartitioner()]
    program = export_program(module, example_inputs)
    # The lowering narrates on stdout and warns per node; the row says what matters.
    logging.getLogger("executorch").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edge = to_edge_transform_and_lower(program, partitioner=partitioners)
        delegated, total = _delegation(edge)
        buffer = edge.to_executorch().buffer
    notes["delegated_nodes"] = delegated
    notes["delegated_share"] = round(delegated / total, 4) if total else 0.0
    return bytes(buffer)


class ExecuTorchBackend(Backend):
    returns_flat_leaves = True  # FlatOutputs: the pipeline names the leaves
    name = "executorch"
    description = "torch.export -> ExecuTorch (XNNPACK) .pte -> executorch.runtime"
    options = OPTIONS

    def supports(self, cell: Cell, precision: Precision) -> str | None:
        if cell.device != "cpu":
            return f"the executorch backend runs the .pte on the CPU, not {cell.device}"
        return autocast_unsupported(precision) or _missing()

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        from executorch.runtime import Runtime

        delegate = str(ctx.options.get("delegate", "xnnpack"))
        if delegate not in DELEGATES:
            raise ValueError(f"delegate={delegate!r}; valid: {', '.join(DELEGATES)}")
        ctx.notes.update(delegate=delegate, executorch=library_version("executorch"))
        built: dict[str, Any] = {}

        def build(path: Path) -> None:
            path.write_bytes(_lower(module, example_inputs, delegate, built))

        def load(path: Path) -> Any:
            return Runtime.get().load_program(path).load_method("forward")

        key = artifact_key(
            ctx, module, [f"delegate={delegate}", f"executorch={ctx.notes['executorch']}"]
        )
        method = load_or_build(ctx, key, ".pte", build, load)
        ctx.notes.update(built)  # delegation counts are known when this run lowered it

        def call(*inputs: Any) -> list[torch.Tensor]:
            return list(method.execute([x.contiguous() for x in inputs]))

        return call


BACKEND = ExecuTorchBackend()
