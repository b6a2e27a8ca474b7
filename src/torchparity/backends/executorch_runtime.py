"""ExecuTorch: torch.export -> to_edge_transform_and_lower (XNNPACK partitioner,
or none for the portable kernels) -> to_executorch() -> a .pte program, cached
and sealed like every artifact, loaded with executorch.runtime and run through
its ``forward`` method, as an on-device application would.

Options (``--backend-option executorch.KEY=VALUE``): ``delegate`` (``xnnpack``,
the default, or ``portable``: no delegate, ExecuTorch's portable kernels only).

The .pte is static: it runs at the example inputs' shapes only, and a call at
another shape fails loudly in the runtime (a resize error), never silently.
At the int8 precisions the program lowered is the pt2e-converted one, the
quantized reference's very program (backends/quantize.py); XNNPACK runs its
quantized operators in integer arithmetic.

The row records the delegate, how many of the lowered graph's operator nodes
XNNPACK took (``backend_delegated_nodes`` / ``backend_delegated_share``), the
operators left to ExecuTorch's own kernels (``backend_undelegated_ops``) and
the executorch version.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision
from torchparity.backends.artifacts import artifact_key, library_version, load_or_build
from torchparity.backends.base import Backend, PrepareContext
from torchparity.backends.executorch_program import _delegation, _load_method
from torchparity.backends.options import BackendOption
from torchparity.backends.quantize import quantized_for
from torchparity.backends.torch_export import autocast_unsupported, export_program

if TYPE_CHECKING:  # executorch is an optional extra, imported where used
    from executorch.exir.backend.partitioner import Partitioner

DELEGATES = ("xnnpack", "portable")
OPTIONS = {
    "delegate": BackendOption(
        "xnnpack (default: XNNPACK delegate) or portable (no delegate)",
        "choice",
        ("xnnpack", "portable"),
    )
}
INSTALL_HINT = "pip install 'torchparity[executorch]'"


def _missing() -> str | None:
    # torchao (imported by executorch) warns about each CUDA kernel library a CPU
    # build cannot load, and torch about its pytree registrations: noise in every run.
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import executorch.exir  # noqa: F401
        import executorch.runtime  # noqa: F401
    except ImportError as exc:
        return f"executorch is not installed ({INSTALL_HINT}): {exc}"
    except Exception as exc:  # noqa: BLE001 - the pybinding links libtorch: a torch it was not built for
        return f"executorch does not load beside torch {torch.__version__}: {exc}"
    return None


def _lower(module: torch.nn.Module, example_inputs: tuple, delegate: str, notes: dict) -> bytes:
    from executorch.exir import to_edge_transform_and_lower

    partitioners: list[Partitioner] = []
    if delegate == "xnnpack":
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        partitioners = [XnnpackPartitioner()]
    program = export_program(module, example_inputs)
    # The lowering narrates on stdout and warns per node; the row says what matters.
    logging.getLogger("executorch").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edge = to_edge_transform_and_lower(program, partitioner=partitioners)
        _delegation(edge, notes)
        return bytes(edge.to_executorch().buffer)


class ExecuTorchBackend(Backend):
    returns_flat_leaves = True  # FlatOutputs: the pipeline names the leaves
    name = "executorch"
    description = "torch.export -> ExecuTorch (XNNPACK) .pte -> executorch.runtime"
    options = OPTIONS
    quantized_modes = ("static", "dynamic")

    def supports(self, cell: Cell, precision: Precision) -> str | None:
        if cell.device != "cpu":
            return f"the executorch backend runs the .pte on the CPU, not {cell.device}"
        return autocast_unsupported(precision) or _missing()

    generates = True  # a static KV cache export (backends/executorch_generation.py)

    def generation_unsupported(self, case: Any, precision: Precision) -> str | None:
        if precision.quant is not None:
            return "int8 generation on executorch is not built"
        if precision.dtype != torch.float32:
            return "the static-cache generation program is lowered at fp32 only here"
        from torchparity.backends.past_kv_io import case_unsupported

        return autocast_unsupported(precision) or _missing() or case_unsupported(case)

    def prepare_generation(
        self, model: torch.nn.Module, prompts: Any, max_len: int, ctx: PrepareContext
    ) -> Any:
        from torchparity.backends.executorch_generation import prepare_executorch_generation

        return prepare_executorch_generation(model, prompts, max_len, ctx)

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        delegate = str(ctx.options.get("delegate", "xnnpack"))
        if delegate not in DELEGATES:
            raise ValueError(f"delegate={delegate!r}; valid: {', '.join(DELEGATES)}")
        ctx.notes.update(delegate=delegate, executorch=library_version("executorch"))
        built: dict[str, Any] = {}
        facts = [f"delegate={delegate}", f"executorch={ctx.notes['executorch']}"]
        program = module
        if ctx.precision.quant is not None:  # the quantized reference's program, lowered
            quantized = quantized_for(module, example_inputs, ctx)
            program, facts = quantized.module, facts + quantized.key()

        def build(path: Path) -> None:
            path.write_bytes(_lower(program, example_inputs, delegate, built))

        def load(path: Path) -> Any:
            return _load_method(path, built)

        key = artifact_key(ctx, module, facts)
        method = load_or_build(ctx, key, ".pte", build, load)
        ctx.notes.update(built)  # delegation counts are known when this run lowered it

        def call(*inputs: Any) -> list[torch.Tensor]:
            return list(method.execute([x.contiguous() for x in inputs]))

        return call


BACKEND = ExecuTorchBackend()
