"""ExecuTorch generation (``--mode generate``): a static KV cache export, the
way ExecuTorch's LLM users export a Hugging Face decoder (optimum-executorch's
recipe): transformers' ``TorchExportableModuleWithStaticCache`` holds a
``StaticCache`` as mutable buffers and maps ``(input_ids, cache_position) ->
logits``; it is exported with a dynamic sequence dim (``seq_length_dim``, at
most the cache's length) so one method serves prefill (the whole prompt at
once) and decode (one token), lowered to XNNPACK and run with
``executorch.runtime``. The cache lives in the program's buffers between calls;
a prefill at cache position 0 starts a new sequence over them.

The export takes no attention mask, as the ExecuTorch LLM runner feeds none:
a left-padded batch cannot be served (its batch-1 rows can), and is refused
with that reason. The program is static in batch and cache length, so both
are in its artifact key.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from torchparity.backends.artifacts import artifact_key, library_version, load_or_build
from torchparity.backends.base import PrepareContext
from torchparity.backends.executorch_program import _delegation, _load_method
from torchparity.backends.past_kv_io import unsupported_model

if TYPE_CHECKING:
    from torchparity.backends.generation import Prompts

PADDED = (
    "a static-cache export (transformers' TorchExportableModuleWithStaticCache, as ExecuTorch's "
    "LLM runner calls it) takes (input_ids, cache_position) and no attention mask: a left-padded "
    "batch cannot be served; its batch-1 rows run"
)


def padding_refusal(prompts: Prompts) -> str | None:
    """Why the static-cache program cannot serve ``prompts``, or None."""
    return PADDED if bool((prompts.attention_mask == 0).any()) else None


def static_cache_module(model: torch.nn.Module, batch: int, max_len: int) -> torch.nn.Module:
    """transformers' exportable wrapper of ``model`` over a StaticCache of
    ``batch`` x ``max_len`` (the model's generation config set to a static cache
    for the wrapper's check, then restored)."""
    from transformers.integrations.executorch import TorchExportableModuleWithStaticCache

    hf: Any = model  # a transformers PreTrainedModel (nn.Module's attributes type as Tensor)
    config = hf.generation_config
    saved = (config.use_cache, config.cache_implementation)
    config.use_cache, config.cache_implementation = True, "static"
    try:
        return TorchExportableModuleWithStaticCache(hf, batch, max_len, hf.device).eval()
    finally:
        config.use_cache, config.cache_implementation = saved


def lower_static_cache(model: torch.nn.Module, batch: int, max_len: int, notes: dict) -> bytes:
    """The .pte of the static-cache module: torch.export with a dynamic sequence
    dim (optimum-executorch's), XNNPACK, ``to_executorch``."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    module = static_cache_module(model, batch, max_len)
    seq = torch.export.Dim("seq_length_dim", max=max_len - 1)
    example = {
        "input_ids": torch.ones(batch, 3, dtype=torch.int64),
        "cache_position": torch.arange(3, dtype=torch.int64),
    }
    logging.getLogger("executorch").setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(
            module,
            args=(),
            kwargs=example,
            dynamic_shapes={"input_ids": {1: seq}, "cache_position": {0: seq}},
            # transformers' own default; non-strict export of this module fails in
            # run_decompositions on torch 2.13 ("expected compiled_fn to be GraphModule").
            strict=True,
        )
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        _delegation(edge, notes)
        return bytes(edge.to_executorch().buffer)


@dataclass
class StaticState:
    """The next cache position, and which prefill the program's buffers hold."""

    generation: int
    position: int


class ExecuTorchStaticCachePath:
    """prefill/decode over the ``forward`` method of the static-cache .pte."""

    cache_kind = "static-cache"
    decode_input_len = 1

    def __init__(self, method: Any, batch: int, max_len: int, device: torch.device) -> None:
        self.method = method
        self.batch = batch
        self.max_len = max_len
        self.device = device
        self.generation = 0

    def _call(self, ids: torch.Tensor, start: int) -> torch.Tensor:
        if start + ids.shape[1] > self.max_len:
            raise RuntimeError(
                f"the static cache holds {self.max_len} positions; position {start + ids.shape[1]}"
                " does not fit"
            )
        positions = torch.arange(start, start + ids.shape[1], dtype=torch.int64)
        (logits,) = self.method.execute([ids.to(torch.int64).cpu().contiguous(), positions])
        return logits.to(self.device)

    def prefill(self, prompts: Prompts) -> tuple[torch.Tensor, StaticState]:
        reason = padding_refusal(prompts)
        if reason is not None or prompts.input_ids.shape[0] != self.batch:
            raise NotImplementedError(reason or f"the program was exported for batch {self.batch}")
        self.generation += 1
        logits = self._call(prompts.input_ids, 0)
        return logits, StaticState(self.generation, prompts.input_ids.shape[1])

    def decode(self, tokens: torch.Tensor, state: StaticState) -> tuple[torch.Tensor, StaticState]:
        if state.generation != self.generation:
            raise RuntimeError(
                "the program's cache buffers hold a later prompt batch: a static-cache "
                "path serves one generation at a time"
            )
        logits = self._call(tokens.reshape(-1, 1), state.position)
        state.position += 1
        return logits[:, -1], state


def prepare_executorch_generation(
    model: torch.nn.Module, prompts: Prompts, max_len: int, ctx: PrepareContext
) -> ExecuTorchStaticCachePath:
    """The executorch backend's generation path: the cached static-cache .pte,
    sized for ``prompts``' batch and ``max_len`` positions."""
    from torchparity.backends.generation import PromptsUnservable

    reason = unsupported_model(model)
    if reason is not None:
        raise NotImplementedError(reason)
    reason = padding_refusal(prompts)
    if reason is not None:
        raise PromptsUnservable(reason)
    batch = int(prompts.input_ids.shape[0])
    notes: dict[str, Any] = {}
    facts = [
        "generation=static-cache",
        f"batch={batch}",
        f"max_len={max_len}",
        f"executorch={library_version('executorch')}",
    ]

    def build(path: Path) -> None:
        path.write_bytes(lower_static_cache(model, batch, max_len, notes))

    method = load_or_build(
        ctx, artifact_key(ctx, model, facts), ".pte", build, lambda p: _load_method(p, notes)
    )
    ctx.notes.update(
        notes,
        delegate="xnnpack",
        executorch=library_version("executorch"),
        generation_graph=f"static cache, batch {batch}, {max_len} positions",
    )
    return ExecuTorchStaticCachePath(method, batch, max_len, ctx.device.torch_device())
