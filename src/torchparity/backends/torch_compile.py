"""torch.compile: the module compiled (inductor by default) inside ``prepare``
with the example inputs, so compile time lands in ``prepare_s`` and never in
latency. Recompilations and graph breaks are counted and reported.

Options: ``backend`` (the torch.compile backend, default inductor), ``mode``
(default, reduce-overhead, max-autotune, ...), ``dynamic`` (true/false; default
unset = torch's automatic dynamic shapes), ``fullgraph`` (true/false).

At ``int8-dynamic`` the module is first quantized with torchao (backends/torchao_int8.py)
and then compiled: torchao's int8 dynamic path as inductor runs it.

Caching: torch.compile has no artifact to save here; inductor's own on-disk
caches (FX graph and AOTAutograd caches) are pointed at the run's cache
directory, so a later run with the same ``--cache-dir`` skips code generation
and C++ compilation (dynamo still traces). ``--no-cache`` turns them off.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from torchparity.backends.base import Backend, PrepareContext, autocast_context
from torchparity.backends.options import BackendOption, truthy
from torchparity.backends.torchao_int8 import torchao_quantize


def _compilers() -> list[str]:
    import torch._dynamo  # only when a value is checked: importing dynamo takes a while

    return list(torch._dynamo.list_backends(exclude_tags=()))


def _modes() -> list[str]:
    import torch._inductor

    return list(torch._inductor.list_mode_options())


OPTIONS = {
    "backend": BackendOption("torch.compile backend (default inductor)", "choice", _compilers),
    "mode": BackendOption("torch.compile mode (default: torch's default)", "choice", _modes),
    "dynamic": BackendOption("dynamic shapes (default: automatic)", "bool"),
    "fullgraph": BackendOption("a graph break is an error", "bool"),
}


def _counter(group: str, name: str | None = None) -> int:
    from torch._dynamo.utils import counters

    values = counters.get(group, {})
    return int(values.get(name, 0)) if name else int(sum(values.values()))


def _counters_of(group: str) -> dict[str, int]:
    from torch._dynamo.utils import counters

    return dict(counters.get(group, {}))


class CompileBackend(Backend):
    name = "compile"
    supports_autocast = True
    description = "torch.compile (inductor by default); compile time in prepare_s"
    options = OPTIONS
    quantized_modes = ("dynamic",)  # torchao's int8 dynamic quantization, compiled

    def _configure_caches(self, ctx: PrepareContext) -> None:
        import torch._functorch.config as functorch_config
        import torch._inductor.config as inductor_config

        enabled = ctx.cache_dir is not None
        inductor_config.fx_graph_cache = enabled
        functorch_config.enable_autograd_cache = enabled
        if ctx.cache_dir is not None:
            # Read by inductor whenever it opens its cache: set before compiling.
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(ctx.cache_dir / "inductor")
        ctx.notes["cache_dir"] = os.environ.get("TORCHINDUCTOR_CACHE_DIR", "") if enabled else ""

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        import torch._dynamo

        self._configure_caches(ctx)
        # Each cell starts from a clean dynamo state: earlier cells' guards and
        # the per-code cache limit must not decide this cell's compilations.
        torch._dynamo.reset()
        compiler = str(ctx.options.get("backend", "inductor"))
        mode = ctx.options.get("mode") or None
        kwargs: dict[str, Any] = {"backend": compiler, "mode": mode}
        if "dynamic" in ctx.options:
            kwargs["dynamic"] = truthy(ctx.options["dynamic"])
        if "fullgraph" in ctx.options:
            kwargs["fullgraph"] = truthy(ctx.options["fullgraph"])
        ctx.notes.update(compiler=compiler, mode=mode or "default")
        if ctx.precision.quant is not None:
            module = torchao_quantize(module, ctx)
        compiled = torch.compile(module, **kwargs)

        def call(*inputs: Any) -> Any:
            with autocast_context(ctx):
                return compiled(*inputs)

        before = {k: _counter("inductor", k) for k in ("fxgraph_cache_hit", "fxgraph_cache_miss")}
        frames_before, ok_before = _counter("frames", "total"), _counter("frames", "ok")
        graphs_before, breaks_before = _counter("stats", "unique_graphs"), _counter("graph_break")
        unsupported_before = _counters_of("unimplemented")
        call(*example_inputs)  # compiles: this is what prepare_s times
        # Counters are process-wide: keep this cell's baselines on its callable.
        call.frames_after_compile = _counter("frames", "total")  # type: ignore[attr-defined]
        ctx.notes["frames_compiled"] = _counter("frames", "ok") - ok_before
        ctx.notes["frames_skipped"] = (
            call.frames_after_compile - frames_before - ctx.notes["frames_compiled"]  # type: ignore[attr-defined]
        )
        ctx.notes["graphs"] = _counter("stats", "unique_graphs") - graphs_before
        if ctx.notes["graphs"] == 0:
            # Dynamo gave up on the whole forward: the "compiled" model runs eagerly.
            new = [
                k
                for k, n in _counters_of("unimplemented").items()
                if n > unsupported_before.get(k, 0)
            ]
            reason = new[0].strip().splitlines()[0] if new else "no graph captured"
            ctx.notes["fallback"] = f"ran eagerly: {reason}"
        hits = _counter("inductor", "fxgraph_cache_hit") - before["fxgraph_cache_hit"]
        misses = _counter("inductor", "fxgraph_cache_miss") - before["fxgraph_cache_miss"]
        ctx.notes["cache"] = (
            "off"
            if ctx.cache_dir is None
            else "hit"
            if hits and not misses
            else "miss"
            if misses and not hits
            else "n/a (no inductor graph)"
            if not hits and not misses
            else f"{hits} hit, {misses} miss"
        )
        ctx.notes["graph_breaks"] = _counter("graph_break") - breaks_before
        ctx.notes["recompilations"] = 0
        return call

    generates = True

    def generation_unsupported(self, case: Any, precision: Any) -> str | None:
        if precision.quant is not None:
            return "compile generation at the int8 precisions is not built (docs/generation.md)"
        return None

    def prepare_generation(
        self, model: torch.nn.Module, prompts: Any, max_len: int, ctx: PrepareContext
    ) -> Any:
        """The model's forward compiled (dynamic shapes unless ``dynamic`` says
        otherwise: the sequence grows every step) under eager's cache path;
        a prefill and two decode calls compile it here, in ``prepare_s``."""
        import torch._dynamo

        from torchparity.backends.hf_cache_path import HFCachePath

        self._configure_caches(ctx)
        torch._dynamo.reset()
        compiler = str(ctx.options.get("backend", "inductor"))
        dynamic = truthy(ctx.options["dynamic"]) if "dynamic" in ctx.options else True
        compiled = torch.compile(
            model, backend=compiler, mode=ctx.options.get("mode") or None, dynamic=dynamic
        )
        ctx.notes.update(compiler=compiler, dynamic=dynamic)
        path = HFCachePath(model, forward=compiled, context=lambda: autocast_context(ctx))
        frames_before = _counter("frames", "total")
        logits, state = path.prefill(prompts)
        logits = logits[:, -1]
        for _ in range(2):
            logits, state = path.decode(logits.argmax(-1), state)
        ctx.notes["frames_compiled"] = _counter("frames", "total") - frames_before
        return path

    trains = True

    def train_forward(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        """torch.compile of the module; AOTAutograd compiles the backward on the
        first backward. Compilation happens in the first step (its excess time
        goes to prepare_s)."""
        import torch._dynamo

        self._configure_caches(ctx)
        torch._dynamo.reset()
        compiler = str(ctx.options.get("backend", "inductor"))
        kwargs: dict[str, Any] = {"backend": compiler, "mode": ctx.options.get("mode") or None}
        for key in ("dynamic", "fullgraph"):
            if key in ctx.options:
                kwargs[key] = truthy(ctx.options[key])
        ctx.notes.update(compiler=compiler, mode=kwargs["mode"] or "default")
        return torch.compile(module, **kwargs)

    def finalize(self, prepared: Callable[..., Any], ctx: PrepareContext) -> None:
        """Frames compiled after the first call are recompilations (guard failures)."""
        frames_after_compile = getattr(prepared, "frames_after_compile", None)
        if frames_after_compile is not None:
            ctx.notes["recompilations"] = _counter("frames", "total") - frames_after_compile


BACKEND = CompileBackend()
