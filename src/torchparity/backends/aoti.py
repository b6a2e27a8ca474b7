"""AOTInductor: the exported program compiled ahead of time into a .pt2
package (torch._inductor.aoti_compile_and_package), loaded back
(aoti_load_package) and run; the package is the artifact a C++ application
would load. Needs a C++ compiler where it compiles."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision
from torchparity.backends import export_generation
from torchparity.backends.artifacts import artifact_key, load_or_build
from torchparity.backends.base import Backend, PrepareContext
from torchparity.backends.torch_export import autocast_unsupported, export_program

T = TypeVar("T")

# What inductor's cpp builder looks for (CXX first); MSVC on Windows.
_COMPILERS = ("cl",) if sys.platform == "win32" else ("g++", "clang++", "c++")


def _compiler_missing() -> str | None:
    import os

    if os.environ.get("CXX") and shutil.which(os.environ["CXX"]):
        return None
    if any(shutil.which(c) for c in _COMPILERS):
        return None
    return f"AOTInductor needs a C++ compiler; none of {', '.join(_COMPILERS)} is on PATH"


class AotiBackend(Backend):
    returns_flat_leaves = True  # FlatOutputs: the pipeline names the leaves
    name = "aoti"
    description = "AOTInductor: torch.export -> aoti_compile_and_package -> aoti_load_package"
    shapes = True  # the program exported with Dims; its placeholders read back

    generates = True

    def generation_unsupported(self, case: Any, precision: Any) -> str | None:
        return _compiler_missing() or export_generation.generation_unsupported(case, precision)

    def prepare_generation(
        self, model: torch.nn.Module, prompts: Any, max_len: int, ctx: PrepareContext
    ) -> Any:
        return export_generation.prepare_aoti_generation(model, ctx)

    def supports(self, cell: Cell, precision: Precision) -> str | None:
        if not hasattr(torch._inductor, "aoti_compile_and_package"):
            return f"torch {torch.__version__} has no torch._inductor.aoti_compile_and_package"
        return autocast_unsupported(precision) or _compiler_missing()

    def artifact(
        self,
        module: torch.nn.Module,
        example_inputs: tuple,
        ctx: PrepareContext,
        load: Callable[[Path], T],
    ) -> T:
        """The cell's .pt2 package, from the cache or built, passed through
        ``load`` (which must fail on a torn file). Shared with aoti-cpp, which
        hands the same package to the native runner."""

        # Shape mode: the program is exported first, cached package or not, so
        # its input signature (what the package was compiled from) is recorded.
        exported = export_program(module, example_inputs, ctx) if ctx.dynamic else None

        def build(path: Path) -> None:
            program = exported or export_program(module, example_inputs)
            torch._inductor.aoti_compile_and_package(program, package_path=str(path))

        return load_or_build(ctx, artifact_key(ctx, module), ".pt2", build, load)

    @staticmethod
    def load_file(path: Path, device: torch.device) -> Callable[..., Any]:
        return torch._inductor.aoti_load_package(str(path))

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        device = ctx.device.torch_device()
        runner = self.artifact(module, example_inputs, ctx, lambda p: self.load_file(p, device))

        def call(*inputs: Any) -> Any:
            return runner(*inputs)

        return call


BACKEND = AotiBackend()
