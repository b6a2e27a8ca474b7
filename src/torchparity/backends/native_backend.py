"""What torchscript-cpp and aoti-cpp share: the artifact of their Python
counterpart (same file, same cache entry) handed to the native runner, a C++
process that loads it as a C++ application would, runs it and times it.

A row of a C++ backend carries, beside the usual drift and timing columns
(timing from the runner's own samples): ``backend_runner_build`` (built, with
the seconds, or cached), ``backend_compiler`` and ``backend_libtorch`` (what
the runner was built with), ``backend_runner_load_s``, and
``backend_python_max_abs_diff``: the largest difference between the C++
outputs and the same artifact run from Python on the same inputs.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import torch

from torchparity._core.errors import first_line
from torchparity.axes.devices import Device
from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision
from torchparity.backends import get_backend, native_build
from torchparity.backends.base import Backend, PrepareContext
from torchparity.backends.native_client import NativeRunner, Runner
from torchparity.backends.options import BackendOption
from torchparity.cases.outputs import flat_leaves
from torchparity.timing.measurement import Measurement
from torchparity.timing.timer import TimingConfig
from torchparity.verdicts.drift import max_abs_diff

# A failed build is remembered per process: every later cell gets the same
# error row at once instead of compiling again.
_BUILD_ERRORS: dict[str, native_build.NativeBuildError] = {}
T = TypeVar("T")


def _checked_zip(path: Path) -> Path:
    """The artifact's path once its zip container opens (TorchScript files and
    .pt2 packages are zip files): a torn file fails here and is rebuilt, while
    the runner's own load failures stay errors. The members are not CRC-read
    again: a cache entry's bytes were checked against its seal when read."""
    with zipfile.ZipFile(path):
        pass
    return path


def runner_build(ctx: PrepareContext) -> native_build.RunnerBuild:
    """The runner binary under the run's cache root (built now if needed),
    recording how in ``ctx.notes``."""
    key = f"{native_build.source_dir().as_posix()}|{ctx.runner_cache}"
    if key in _BUILD_ERRORS:
        raise _BUILD_ERRORS[key]
    try:
        build = native_build.ensure_runner(ctx.runner_cache)
    except native_build.NativeBuildError as exc:
        _BUILD_ERRORS[key] = exc
        raise
    built = f"rebuilt ({build.rebuilt})" if build.rebuilt else "built"
    ctx.notes["runner_build"] = f"{built} in {build.seconds:.1f} s" if build.built else "cached"
    return build


@runtime_checkable
class ArtifactBackend(Protocol):
    """What a C++ or JavaScript backend needs of the Python backend whose
    artifact file it runs (torchscript, aoti, onnxruntime)."""

    name: str
    options: Mapping[str, BackendOption | str] | None

    def supports(self, cell: Cell, precision: Precision) -> str | None: ...

    def artifact(
        self,
        module: torch.nn.Module,
        example_inputs: tuple,
        ctx: PrepareContext,
        load: Callable[[Path], T],
    ) -> T:
        """The cell's artifact file, from the cache or built, passed through ``load``."""
        ...


@runtime_checkable
class LoadableArtifact(ArtifactBackend, Protocol):
    """An artifact Python can also run (torchscript, aoti): the C++ outputs are
    compared with it."""

    def load_file(self, path: Path, device: torch.device) -> Callable[..., Any]: ...


class NativeCall:
    """The prepared callable: inputs to the runner, its flat output leaves back
    on the cell's device (the pipeline names them after eager's)."""

    def __init__(self, runner: Runner, device: torch.device, artifact: Path) -> None:
        self.runner, self.device, self.artifact = runner, device, artifact
        self.first: tuple[tuple, list[torch.Tensor]] | None = None  # inputs, leaves of a call

    def __call__(self, *inputs: Any) -> tuple[torch.Tensor, ...]:
        _, leaves = self.runner.call(inputs)
        leaves = [leaf.to(self.device) for leaf in leaves]
        if self.first is None:
            self.first = (
                tuple(x.clone() if isinstance(x, torch.Tensor) else x for x in inputs),
                leaves,
            )
        return tuple(leaves)


class NativeBackend(Backend):
    """Base of the C++ backends; ``python`` is the Python backend whose artifact runs."""

    kind = ""  # the runner's --kind
    returns_flat_leaves = True  # the runner flattens outputs as pytree does
    runtime_language = "C++"

    # artifact_backend (set by each subclass): the Python counterpart, whose
    # artifact runs here; its cache key and directory are ours.

    def _python(self) -> ArtifactBackend:
        """The Python backend whose artifact file this one runs."""
        python = get_backend(self.artifact_backend or "")
        if not isinstance(python, ArtifactBackend):
            raise TypeError(f"backend {python.name!r} builds no artifact file for {self.name}")
        return python

    @property
    def options(self) -> Mapping[str, BackendOption | str] | None:  # type: ignore[override]
        return self._python().options

    def supports(self, cell: Cell, precision: Precision) -> str | None:
        if cell.device.split(":")[0] not in ("cpu", "cuda"):
            return f"the native runner runs on cpu and cuda, not {cell.device}"
        return self._python().supports(cell, precision) or native_build.toolchain_missing()

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        build = runner_build(ctx)
        # ctx carries the Python backend's cache key and directory (artifact_backend).
        artifact = self._python().artifact(module, example_inputs, ctx, _checked_zip)
        ctx.notes["artifact_of"] = self.artifact_backend
        device = ctx.device.torch_device()
        runner = NativeRunner(
            build.binary,
            self.kind,
            artifact,
            device,
            torch.get_num_threads(),
            torch.get_num_interop_threads(),
        )
        ctx.notes["compiler"] = runner.info.get("compiler", "")
        ctx.notes["libtorch"] = runner.info.get("libtorch", "")
        ctx.notes["runner_load_s"] = runner.info.get("load_s")
        ctx.notes["runner_threads"] = runner.info.get("threads")
        return NativeCall(runner, device, artifact)

    def measure(
        self, prepared: Callable[..., Any], inputs: tuple, config: TimingConfig, device: Device
    ) -> Measurement | None:
        assert isinstance(prepared, NativeCall)
        return prepared.runner.measure(inputs, config)

    def count_calls(
        self, prepared: Callable[..., Any], inputs: tuple, warmup: int, calls: int, slow_s: float
    ) -> int | None:
        """Counted in the runner's process, which the counter started under
        callgrind (``native_client.ENV_CALLGRIND``); the runner is closed after."""
        assert isinstance(prepared, NativeCall) and isinstance(prepared.runner, NativeRunner)
        try:
            return prepared.runner.count(inputs, warmup, calls, slow_s)
        finally:
            prepared.runner.close()

    def counting_unavailable(self) -> str | None:
        return native_build.callgrind_missing()

    def finalize(self, prepared: Callable[..., Any], ctx: PrepareContext) -> None:
        """The same artifact from Python on the same inputs: how far apart the two are."""
        assert isinstance(prepared, NativeCall)
        prepared.runner.close()
        if prepared.first is None:
            return
        inputs, leaves = prepared.first
        python = self._python()
        if not isinstance(python, LoadableArtifact):
            return  # nothing in Python loads this artifact: no comparison
        try:
            loaded = python.load_file(prepared.artifact, prepared.device)
            with torch.no_grad():
                python_leaves = [
                    x for x in flat_leaves(loaded(*inputs)) if isinstance(x, torch.Tensor)
                ]
        except Exception as exc:  # the C++ row stands; say why Python could not compare
            ctx.notes["python_max_abs_diff"] = None
            ctx.notes["python_error"] = first_line(exc)
            return
        if len(python_leaves) != len(leaves):
            ctx.notes["python_max_abs_diff"] = None
            ctx.notes["python_leaves"] = len(python_leaves)
            return
        ctx.notes["python_max_abs_diff"] = max_abs_diff(leaves, python_leaves)
