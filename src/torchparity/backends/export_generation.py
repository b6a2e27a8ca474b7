"""torch.export generation (``--mode generate``): the past-kv-io module
(backends/past_kv_io.py, the form the ONNX path exports) exported with
torch.export.export, dynamic batch and sequence dims, saved with
torch.export.save and run as the loaded program's module: prefill over an
empty past, then one token per sequence per decode call, each call's
``present`` tensors fed back as the next ``past``. The harness owns the loop.

The .pt2 file is an artifact like the forward cells' (backends/artifacts.py:
keyed, sealed, loaded only from a verified copy)."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from torchparity.backends.artifacts import artifact_key, load_or_build
from torchparity.backends.base import PrepareContext
from torchparity.backends.past_kv_io import (
    CacheGeometry,
    DecodeFeed,
    PastKeyValuesIO,
    cache_geometry,
    case_unsupported,
    dynamic_shapes,
    example_inputs,
    prompt_feed,
    unsupported_model,
)

if TYPE_CHECKING:
    from torchparity.backends.generation import Prompts


def generation_unsupported(case: Any, precision: Any) -> str | None:
    """Why torch.export has no generation for ``case`` at ``precision``, or None."""
    if precision.autocast is not None:
        return "autocast is not captured into an exported artifact; use fp16/bf16"
    if precision.quant is not None:
        return "int8 generation on export is not built (the past-kv-io program is float)"
    return case_unsupported(case)


def export_past_kv_io(model: torch.nn.Module, geometry: CacheGeometry) -> Any:
    """torch.export.export of the past-kv-io form, batch and sequence dims dynamic."""
    wrapper = PastKeyValuesIO(model, geometry).eval()
    args = example_inputs(geometry, next(model.parameters()).device)
    with warnings.catch_warnings():  # advice about the model's code, once per export
        warnings.simplefilter("ignore")
        return torch.export.export(wrapper, args, dynamic_shapes=dynamic_shapes(geometry))


def program_artifact(model: torch.nn.Module, ctx: PrepareContext) -> tuple[Any, CacheGeometry]:
    """The past-kv-io ExportedProgram of ``model`` (cached and sealed as .pt2),
    loaded back with torch.export.load, and its cache layout."""
    reason = unsupported_model(model)
    if reason is not None:
        raise NotImplementedError(reason)
    geometry = cache_geometry(model)

    def build(path: Path) -> None:
        # In memory first: torch's file writer aborts the process on a full disk.
        buffer = io.BytesIO()
        torch.export.save(export_past_kv_io(model, geometry), buffer)
        path.write_bytes(buffer.getvalue())

    key = artifact_key(ctx, model, ["generation=past-kv-io"])
    program = load_or_build(ctx, key, ".pt2", build, lambda p: torch.export.load(str(p)))
    return program, geometry


@dataclass
class PastState:
    """The path's state: the last call's ``present`` tensors and the feed."""

    past: list[torch.Tensor]
    feed: DecodeFeed


class ProgramPastKVPath:
    """prefill/decode over a callable taking (input_ids, attention_mask,
    position_ids, past) and returning (logits, *present): an ExportedProgram's
    module or an AOTInductor package."""

    cache_kind = "past-kv-io"
    decode_input_len = 1

    def __init__(self, run: Any, geometry: CacheGeometry, device: torch.device) -> None:
        self.run = run
        self.geometry = geometry
        self.device = device

    def _call(self, tokens: dict[str, torch.Tensor], past: list[torch.Tensor]) -> list[Any]:
        feed = [tokens[k].to(self.device) for k in ("input_ids", "attention_mask", "position_ids")]
        return list(self.run(*feed, tuple(past)))

    def prefill(self, prompts: Prompts) -> tuple[torch.Tensor, PastState]:
        batch = prompts.input_ids.shape[0]
        empty = [t.to(self.device) for t in self.geometry.empty_past(batch)]
        logits, *present = self._call(prompt_feed(prompts), empty)
        return logits, PastState(present, DecodeFeed.after_prompt(prompts))

    def decode(self, tokens: torch.Tensor, state: PastState) -> tuple[torch.Tensor, PastState]:
        logits, *present = self._call(state.feed.step(tokens.cpu()), state.past)
        state.past = present
        return logits[:, -1], state


def prepare_export_generation(model: torch.nn.Module, ctx: PrepareContext) -> ProgramPastKVPath:
    """The export backend's generation path: the cached program's module."""
    program, geometry = program_artifact(model, ctx)
    ctx.notes.update(exporter="torch.export", generation_graph="past-kv-io (one program)")
    return ProgramPastKVPath(program.module(), geometry, ctx.device.torch_device())


def prepare_aoti_generation(model: torch.nn.Module, ctx: PrepareContext) -> ProgramPastKVPath:
    """The aoti backend's generation path: the same past-kv-io program compiled
    with AOTInductor into a .pt2 package (cached and sealed as the forward
    cells' packages are), run as ``aoti_load_package``'s model."""
    reason = unsupported_model(model)
    if reason is not None:
        raise NotImplementedError(reason)
    geometry = cache_geometry(model)

    def build(path: Path) -> None:
        program = export_past_kv_io(model, geometry)
        torch._inductor.aoti_compile_and_package(program, package_path=str(path))

    key = artifact_key(ctx, model, ["generation=past-kv-io"])
    runner = load_or_build(
        ctx, key, ".pt2", build, lambda p: torch._inductor.aoti_load_package(str(p))
    )
    ctx.notes.update(exporter="torch.export", generation_graph="past-kv-io (AOTInductor package)")
    return ProgramPastKVPath(runner, geometry, ctx.device.torch_device())
