"""OpenVINO generation (``--mode generate``): a stateful model, built the way
optimum-intel builds one for ``OVModelForCausalLM``. The decoder's past-kv-io
form (backends/past_kv_io.py) is exported (torch.export) and converted
(``openvino.convert_model``), its inputs and outputs named as optimum names
them; then, with OpenVINO's own API:

1. a ``beam_idx`` input is added and each past key/value input is gathered by
   it along the batch dim (optimum's fused cache reorder);
2. ``apply_make_stateful_transformation`` turns each ``past_key_values.N.*``
   input and its ``present.N.*`` output into one variable (ReadValue/Assign);
3. each variable's initial value is zeros of shape [batch, heads, 0, head_dim],
   the batch read from ``input_ids`` (optimum's state initializer).

The model is saved as IR (cached and sealed like the forward cells'), compiled
for the CPU plugin with the precision hint and the KV cache precision (the
hint's unless ``kv_cache_precision`` says otherwise: the plugin's own default
quantizes the cache to u8, which an fp32 cell must not judge), and run through one InferRequest:
``reset_state()`` before each prompt batch, then prefill and one-token decode
calls whose cache lives in the request's state, never in Python.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from torchparity.backends.artifacts import artifact_key, library_version, load_or_build
from torchparity.backends.base import PrepareContext
from torchparity.backends.openvino_io import (
    DEFAULT_HINT,
    HINTS,
    PRECISION_NAMES,
    _pack,
    _to_torch,
    _unpack,
    conversion_failure,
)
from torchparity.backends.past_kv_io import (
    CacheGeometry,
    DecodeFeed,
    PastKeyValuesIO,
    cache_geometry,
    dynamic_shapes,
    example_inputs,
    prompt_feed,
    unsupported_model,
)

if TYPE_CHECKING:
    from torchparity.backends.generation import Prompts

# The CPU plugin's KV cache precision. Its default is u8 (the state quantized
# per group) whatever the hint; the cell's own precision (the hint) is the
# default here, so an fp32 cell judges fp32; ``u8`` measures OpenVINO's default.
KV_CACHE_PRECISIONS = ("f32", "bf16", "f16", "u8")
BATCH_DIM = 0  # the batch dim of every cache tensor ([batch, heads, seq, head_dim])


def _convert(model: torch.nn.Module, geometry: CacheGeometry) -> Any:
    """The past-kv-io form as an ov.Model, its inputs and outputs named as optimum's."""
    import openvino as ov

    wrapper = PastKeyValuesIO(model, geometry).eval()
    args = example_inputs(geometry, next(model.parameters()).device)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(wrapper, args, dynamic_shapes=dynamic_shapes(geometry))
        try:
            converted = ov.convert_model(program)
        except Exception as exc:  # OpConversionFailure: its first line names no operation
            line = conversion_failure(str(exc))
            if line is None:
                raise
            raise NotImplementedError(f"{line}\n{exc}") from None
    for port, name in zip(converted.inputs, geometry.input_names(), strict=True):
        port.get_tensor().set_names({name})
    for port, name in zip(converted.outputs, geometry.output_names(), strict=True):
        port.get_tensor().set_names({name})
    return converted


def _fuse_beam_reorder(model: Any, cache_inputs: list[str]) -> None:
    """Add ``beam_idx`` [batch] and gather every cache input by it (optimum's
    ``fuse_cache_reorder``): the state can be reordered without leaving OpenVINO."""
    import openvino as ov
    from openvino import opset13

    batch = model.input("input_ids").get_partial_shape()[0]
    beam_idx = opset13.parameter(ov.PartialShape([batch]), ov.Type.i32, name="beam_idx")
    beam_idx.output(0).get_tensor().set_names({"beam_idx"})
    model.add_parameters([beam_idx])
    for name in cache_inputs:
        port = model.input(name)
        consumers = port.get_target_inputs()
        gathered = opset13.gather(port, beam_idx, opset13.constant(BATCH_DIM))
        for consumer in consumers:
            consumer.replace_source_output(gathered.output(0))
    model.validate_nodes_and_infer_types()


def _initialise_states(model: Any) -> None:
    """Each variable starts as zeros with the prompt's batch and an empty
    sequence (optimum's ``build_state_initializer``): the dynamic dims of its
    shape at their minimum (0), the batch dim read from ``input_ids``."""
    from openvino import opset13

    shape_of = opset13.shape_of(model.input("input_ids"), output_type="i64")
    batch = opset13.gather(shape_of, opset13.constant([0]), opset13.constant(0))
    for op in model.get_ops():
        if op.get_type_name() != "ReadValue":
            continue
        dims: list[Any] = [
            opset13.constant(np.array([d.min_length], dtype=np.int64))
            for d in op.get_output_partial_shape(0)
        ]
        dims[BATCH_DIM] = batch
        zero = opset13.constant(0.0, dtype=op.get_output_element_type(0))
        op.set_arguments([opset13.broadcast(zero, opset13.concat(dims, axis=0))])
    model.validate_nodes_and_infer_types()


def stateful_model(model: torch.nn.Module, geometry: CacheGeometry) -> Any:
    """The decoder as a stateful ov.Model (the module's docstring, steps 1-3)."""
    from openvino._offline_transformations import apply_make_stateful_transformation

    converted = _convert(model, geometry)
    inputs = geometry.past_names("past_key_values")
    _fuse_beam_reorder(converted, inputs)
    pairs = dict(zip(inputs, geometry.past_names("present"), strict=True))
    apply_make_stateful_transformation(converted, pairs)
    _initialise_states(converted)
    return converted


def _save(model: torch.nn.Module, geometry: CacheGeometry, path: Path) -> None:
    import openvino as ov

    xml = path.with_name(path.name + ".xml")
    try:
        # Weights as they are: save_model would compress them to fp16 by default.
        ov.save_model(stateful_model(model, geometry), str(xml), compress_to_fp16=False)
        path.write_bytes(_pack(xml.read_bytes(), xml.with_suffix(".bin").read_bytes()))
    finally:
        xml.unlink(missing_ok=True)
        xml.with_suffix(".bin").unlink(missing_ok=True)


@dataclass
class StatefulState:
    """The harness's handle on the request's state: which prompt batch it
    belongs to (a second prefill resets the one request) and the feed."""

    generation: int
    feed: DecodeFeed


class OpenVinoStatefulPath:
    """prefill/decode over one InferRequest of the stateful model."""

    cache_kind = "stateful"
    decode_input_len = 1

    def __init__(self, request: Any, device: torch.device) -> None:
        self.request = request
        self.device = device
        self.generation = 0

    def _infer(self, feed: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v.detach().cpu().numpy() for k, v in feed.items()}
        inputs["beam_idx"] = np.arange(feed["input_ids"].shape[0], dtype=np.int32)
        self.request.infer(inputs)
        return _to_torch(self.request.get_tensor("logits")).to(self.device)

    def prefill(self, prompts: Prompts) -> tuple[torch.Tensor, StatefulState]:
        self.request.reset_state()  # a new prompt batch: the variables start empty
        self.generation += 1
        logits = self._infer(prompt_feed(prompts))
        return logits, StatefulState(self.generation, DecodeFeed.after_prompt(prompts))

    def decode(
        self, tokens: torch.Tensor, state: StatefulState
    ) -> tuple[torch.Tensor, StatefulState]:
        if state.generation != self.generation:
            raise RuntimeError(
                "the OpenVINO request's state holds a later prompt batch: a stateful "
                "path serves one generation at a time"
            )
        logits = self._infer(state.feed.step(tokens.cpu()))
        return logits[:, -1], state


def prepare_openvino_generation(model: torch.nn.Module, ctx: PrepareContext) -> Any:
    """The openvino backend's generation path: the cached stateful IR, compiled
    with the cell's precision hint (the precision that ran read back)."""
    import openvino as ov

    reason = unsupported_model(model)
    if reason is not None:
        raise NotImplementedError(reason)
    hint = str(ctx.options.get("inference_precision") or DEFAULT_HINT[ctx.precision.dtype])
    if hint not in HINTS:
        raise ValueError(f"inference_precision={hint!r}; valid: {', '.join(HINTS)}")
    threads = int(ctx.options.get("num_threads", torch.get_num_threads()))
    kv_cache = str(ctx.options.get("kv_cache_precision") or hint)
    if kv_cache not in KV_CACHE_PRECISIONS:
        raise ValueError(
            f"kv_cache_precision={kv_cache!r}; valid: {', '.join(KV_CACHE_PRECISIONS)}"
        )
    geometry = cache_geometry(model)
    core = ov.Core()

    def load(path: Path) -> Any:
        xml, weights = _unpack(path.read_bytes())
        ir = core.read_model(xml, ov.Tensor(np.frombuffer(weights, dtype=np.uint8)))
        config = {
            "INFERENCE_PRECISION_HINT": hint,
            "INFERENCE_NUM_THREADS": threads,
            "KV_CACHE_PRECISION": kv_cache,
        }
        return core.compile_model(ir, "CPU", config)

    facts = ["generation=stateful", f"openvino={library_version('openvino')}"]
    key = artifact_key(ctx, model, facts)
    compiled = load_or_build(ctx, key, ".ovir", lambda p: _save(model, geometry, p), load)
    ran = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
    ctx.notes.update(
        openvino=library_version("openvino"),
        precision_hint=hint,
        effective_precision=ran,
        kv_cache_precision=compiled.get_property("KV_CACHE_PRECISION").to_string(),
        generation_graph="stateful (make_stateful, beam_idx, state initializer)",
    )
    ctx.effective_precision = PRECISION_NAMES.get(ran, ran)
    return OpenVinoStatefulPath(compiled.create_infer_request(), ctx.device.torch_device())
