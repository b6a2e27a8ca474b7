"""ONNX Runtime generation (``--mode generate``): the decoder exported with its
KV cache as inputs and outputs, as optimum-onnx exports a causal LM
(backends/past_kv_io.py: ``input_ids``, ``attention_mask``, ``position_ids``,
``past_key_values.N.key/value`` in; ``logits``, ``present.N.key/value`` out),
one graph for prefill (a past of length 0) and decode, run in an
onnxruntime.InferenceSession as optimum's ORTModelForCausalLM runs it: each
decode call feeds one new token per sequence and the previous call's
``present`` tensors as the next ``past``.

The .onnx file is an artifact like the forward cells' (backends/artifacts.py:
keyed, sealed, loaded only from a verified copy); the onnxruntime-node path
runs the very same file (backends/js_generation.py).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from torchparity.axes.precision import Precision
from torchparity.backends.artifacts import artifact_key, library_version, load_or_build
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

T = TypeVar("T")
# numpy has no bfloat16: ONNX Runtime's Python API would take its bits only.
ORT_GENERATION_DTYPES = (torch.float32, torch.float16)


def generation_unsupported_dtype(dtype: torch.dtype) -> str | None:
    """Why a past-kv-io export at ``dtype`` does not run here, or None."""
    if dtype in ORT_GENERATION_DTYPES:
        return None
    return f"the past-kv-io generation graph runs at fp32/fp16 here, not {dtype}"


def generation_unsupported(backend: Any, case: Any, precision: Precision) -> str | None:
    """Why the onnxruntime backend has no generation for ``case`` at ``precision``, or None."""
    if not backend.generates:
        return f"{backend.name}: the past-kv-io export follows the dynamo exporter (onnxruntime)"
    if precision.autocast is not None:
        return "autocast has no ONNX equivalent; export a half model (fp16/bf16) instead"
    if precision.quant is not None:
        return "int8 generation on onnxruntime is not built (the past-kv-io graph is fp32/fp16)"
    return generation_unsupported_dtype(precision.dtype) or case_unsupported(case)


def export_past_kv_io(
    model: torch.nn.Module, geometry: CacheGeometry, path: Path, opset: int | None
) -> None:
    """torch.onnx.export (dynamo) of the past-kv-io form, names as optimum gives them."""
    import onnx

    wrapper = PastKeyValuesIO(model, geometry).eval()
    args = example_inputs(geometry, next(model.parameters()).device)
    for name in ("torch.onnx", "onnxscript", "onnx_ir"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            args,
            str(path),
            dynamo=True,
            opset_version=opset,
            dynamic_shapes=dynamic_shapes(geometry),
            input_names=geometry.input_names(),
            output_names=geometry.output_names(),
            external_data=False,
            verbose=False,
        )
    onnx.checker.check_model(str(path), full_check=True)


def generation_artifact(
    model: torch.nn.Module, ctx: PrepareContext, load: Callable[[Path], T]
) -> tuple[T, CacheGeometry]:
    """The past-kv-io .onnx file of ``model`` (cached and sealed), passed through
    ``load``, and the cache layout it was exported for."""
    reason = unsupported_model(model)
    if reason is not None:
        raise NotImplementedError(reason)
    geometry = cache_geometry(model)
    opset = int(ctx.options["opset"]) if ctx.options.get("opset") not in (None, "") else None
    facts = [
        "generation=past-kv-io",
        f"opset={opset}",
        f"onnx={library_version('onnx')}",
        f"onnxscript={library_version('onnxscript')}",
        f"onnxruntime={library_version('onnxruntime')}",
    ]
    key = artifact_key(ctx, model, facts)
    artifact = load_or_build(
        ctx, key, ".onnx", lambda p: export_past_kv_io(model, geometry, p, opset), load
    )
    return artifact, geometry


@dataclass
class PastState:
    """The ORT path's state: the last call's ``present`` tensors and the feed."""

    past: list[np.ndarray]
    feed: DecodeFeed


class OnnxPastKVPath:
    """prefill/decode over an InferenceSession of the past-kv-io graph."""

    cache_kind = "past-kv-io"
    decode_input_len = 1

    def __init__(self, session: Any, geometry: CacheGeometry, device: torch.device) -> None:
        self.session = session
        self.geometry = geometry
        self.device = device
        self.past_names = geometry.past_names("past_key_values")

    def _run(self, tokens: dict[str, torch.Tensor], past: list[np.ndarray]) -> list[np.ndarray]:
        feed = {k: v.detach().cpu().numpy() for k, v in tokens.items()}
        feed.update(zip(self.past_names, past, strict=True))
        return self.session.run(None, feed)

    def prefill(self, prompts: Prompts) -> tuple[torch.Tensor, PastState]:
        batch = prompts.input_ids.shape[0]
        empty = [t.numpy() for t in self.geometry.empty_past(batch)]
        logits, *present = self._run(prompt_feed(prompts), empty)
        state = PastState(present, DecodeFeed.after_prompt(prompts))
        return torch.from_numpy(logits).to(self.device), state

    def decode(self, tokens: torch.Tensor, state: PastState) -> tuple[torch.Tensor, PastState]:
        logits, *present = self._run(state.feed.step(tokens.cpu()), state.past)
        state.past = present
        return torch.from_numpy(logits[:, -1]).to(self.device), state


def prepare_onnx_generation(
    model: torch.nn.Module, ctx: PrepareContext, session_loader: Callable[[Path], Any]
) -> OnnxPastKVPath:
    """The onnxruntime backend's generation path: the cached past-kv-io graph in
    a session opened by ``session_loader`` (the forward cells' options)."""
    reason = generation_unsupported_dtype(ctx.precision.dtype)
    if reason is not None:
        raise NotImplementedError(reason)
    session, geometry = generation_artifact(model, ctx, session_loader)
    ctx.notes.update(exporter="dynamo", generation_graph="past-kv-io (one graph, empty past)")
    return OnnxPastKVPath(session, geometry, ctx.device.torch_device())
