"""The backend interface: how a module becomes a callable for a device and precision."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from torchparity._core.row import RUNTIME_LANGUAGES
from torchparity.axes.devices import Device
from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision
from torchparity.backends.options import BackendOption
from torchparity.cases.shapes import DynamicDim
from torchparity.timing.measurement import Measurement
from torchparity.timing.timer import TimingConfig

if TYPE_CHECKING:  # types only: train_loop names this module's PrepareContext
    from torchparity.backends.generation import GenerationPath, LoopPath, Prompts
    from torchparity.train_loop import TrainJob, TrainTrace


@dataclass
class PrepareContext:
    """What a backend may need while preparing one cell.

    ``cache_dir`` is a directory the backend may keep artifacts in (None when
    caching is off); ``cache_key`` identifies the case, precision, input
    signature and library versions, and a backend adds its own options to it.
    """

    cell: Cell
    device: Device
    precision: Precision
    cache_dir: Path | None = None
    cache_key: str = ""
    # The run's cache root, which also keeps the runners a backend builds or
    # installs (the C++ runner, the JavaScript packages); None (--no-cache, or no
    # run): they go to a private temporary directory of the process.
    runner_cache: Path | None = None
    # The module's behavioural fingerprint (cases/cache_keys.py): sealed with each
    # artifact; an entry sealed for another one is rebuilt ("model changed").
    fingerprint: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)  # backend facts for the row
    # The submodule's path in the case's model when localization prepares one
    # layer alone ("" for the whole model): lets a backend that treats layers
    # differently (a plugin that perturbs one) recognise it.
    module_path: str = ""
    # int8 precisions: the calibration batches (input tuples, cast like the
    # cell's inputs) drawn from the case's input factory (backends/quantize.py).
    calibration: tuple[tuple, ...] = ()
    # Shape mode (cell/shapes.py): the dims to declare dynamic while building
    # the artifact, the way the backend's users declare them (empty: a static
    # build). A backend that can read its artifact's input signature back puts
    # the requested dims it found static in ``notes["static_dims"]``.
    dynamic: tuple[DynamicDim, ...] = ()
    # The precision that actually ran, in torchparity's names (fp32, bf16, ...),
    # when the runtime says it differs or may differ from the cell's (OpenVINO's
    # CPU plugin); None: the cell's precision ran.
    effective_precision: str | None = None

    def row_columns(self) -> dict[str, Any]:
        """The row columns of what the backend reported (``backend_columns``)."""
        return backend_columns(self.notes, self.effective_precision)


def backend_columns(
    notes: Mapping[str, Any], effective_precision: str | None = None
) -> dict[str, Any]:
    """What a backend reported, as row columns: its notes as ``backend_*``, and
    ``effective_precision`` when it set one."""
    columns = {f"backend_{k}": v for k, v in notes.items()}
    if effective_precision is not None:
        columns["effective_precision"] = effective_precision
    return columns


def autocast_context(ctx: PrepareContext) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for the cell's autocast precision (amp-fp16, amp-bf16),
    else a no-op context."""
    if ctx.precision.autocast is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=ctx.device.torch_device().type, dtype=ctx.precision.autocast)


class Backend:
    """Base class of every backend. Subclasses set ``name`` and override
    ``prepare``; ``supports`` says up front which cells they cannot serve.
    ``options`` names the ``--backend-option NAME.KEY=VALUE`` keys the backend
    reads (key -> a ``BackendOption``, whose type and allowed values are checked
    before any cell runs, or a help string: any text); None accepts any key."""

    name: str = ""
    description: str = ""
    # The language its runtime is called from (one of RUNTIME_LANGUAGES for the
    # built-in backends): Python, C++ (the native runner) or JavaScript (Node,
    # the browser). Each row carries it (``runtime_language``); reports group by it.
    runtime_language: str = RUNTIME_LANGUAGES[0]
    # Whether prepare() honours ``ctx.precision.autocast`` (amp-fp16, amp-bf16);
    # other backends get a skip row for autocast precisions.
    supports_autocast: bool = False
    # True when the prepared callable returns the flat tuple of the module's
    # tensor leaves (see backends/flat.py) rather than eager's structure; the
    # pipeline then names them with eager's leaf names.
    returns_flat_leaves: bool = False
    # The backend whose artifacts (cache key and directory) this one runs, e.g.
    # "torchscript" for torchscript-cpp: both then share one file. None: its own.
    artifact_backend: str | None = None
    options: Mapping[str, BackendOption | str] | None = None
    # The int8 modes (Precision.quant: "static", "dynamic") prepare() serves;
    # the others get a skip row for the int8 precisions.
    quantized_modes: tuple[str, ...] = ()
    # Whether prepare() builds a shape-generic artifact for ``ctx.dynamic``
    # (shape mode); the other backends get a skip row in shape mode.
    shapes: bool = False

    def supports(self, cell: Cell, precision: Precision) -> str | None:
        """None when the cell can run, else the reason it is skipped."""
        return None

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        """Turn ``module`` (already on the device, in the precision) into a
        callable taking the inputs and returning the module's outputs (eager's
        structure, or the flat tensor leaves when ``returns_flat_leaves``).
        Called, like every call of the prepared callable, under the pipeline's
        ``torch.no_grad()``; timed as ``prepare_s``."""
        raise NotImplementedError

    def run(self, prepared: Callable[..., Any], inputs: tuple) -> Any:
        """One call: the timed region."""
        return prepared(*inputs)

    def measure(
        self, prepared: Callable[..., Any], inputs: tuple, config: TimingConfig, device: Device
    ) -> Measurement | None:
        """Time the calls itself (a backend whose calls happen outside this
        process, e.g. the native runner), following ``config`` as
        src/torchparity/timing/timer.py does; None (the default): the pipeline times
        ``run``."""
        return None

    def count_calls(
        self, prepared: Callable[..., Any], inputs: tuple, warmup: int, calls: int, slow_s: float
    ) -> int | None:
        """Instruction counting (``--count-instructions``) for a backend whose
        calls run in a process of its own: that process, started under
        callgrind, makes ``warmup`` calls, then ``calls`` calls with collection
        on (one when a warm-up call took over ``slow_s``) and dumps the count;
        returns how many calls it counted. The last use of ``prepared``. None
        (the default): the calls run in this process, which the counter counts."""
        return None

    def counting_unavailable(self) -> str | None:
        """Why ``count_calls`` cannot count here (checked before any process
        starts), or None."""
        return None

    # -- training (engine/training.py; docs/training.md) ------------------------------
    # Whether train cells run on this backend; the others get a skip row.
    trains: bool = False

    def train_unsupported(self, cell: Cell, precision: Precision) -> str | None:
        """None when the backend can run ``cell`` as a train cell, else the reason."""
        return None if self.trains else f"{self.name} serves inference only (no train cells)"

    def train_forward(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        """For a train cell: a differentiable callable computing ``module``'s
        forward with ``module``'s own parameters (the optimizer steps those).
        A lazily compiling backend compiles on the first step; that time is
        counted in ``prepare_s``, not in the step time."""
        raise NotImplementedError

    def run_training(self, job: TrainJob) -> TrainTrace | None:
        """A backend that runs the whole training loop itself (ddp: several
        processes) returns engine/training.TrainTrace here; None (the default)
        runs the in-process loop over :meth:`train_forward`."""
        return None

    def finalize(self, prepared: Callable[..., Any], ctx: PrepareContext) -> None:
        """Called after the cell's calls (run and timing): add to ``ctx.notes``
        what is known only then, e.g. recompilations. Default: nothing."""

    # -- generation (cell/generate.py; docs/generation.md) -----------------------------
    # Whether generate cells run on this backend; the others get a skip row.
    generates: bool = False

    def generation_unsupported(self, case: Any, precision: Precision) -> str | None:
        """None when the backend can run ``case``'s generation at ``precision``,
        else the reason (a ``skip`` row)."""
        return None if self.generates else f"{self.name} has no generation path"

    def prepare_generation(
        self, model: torch.nn.Module, prompts: Prompts, max_len: int, ctx: PrepareContext
    ) -> GenerationPath | LoopPath:
        """The path's generation over ``model`` (the case's generating module,
        already at the cell's precision on the cell's device, in eval mode):
        prefill and one-token decode calls over the path's own cache, or a loop
        the runtime runs itself. ``prompts`` are the cell's (a static build may
        size itself by them); ``max_len`` is prompt_len + max_new_tokens (a
        static cache's size). Called under ``torch.no_grad()``; timed as ``prepare_s``."""
        raise NotImplementedError
