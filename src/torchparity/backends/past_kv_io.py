"""A decoder with its KV cache as graph inputs and outputs ("past-kv-io"), the
form optimum-onnx exports a causal LM in and optimum-intel converts before it
makes the cache OpenVINO state: inputs ``input_ids``, ``attention_mask``,
``position_ids``, ``past_key_values.N.key`` / ``.value``; outputs ``logits``,
``present.N.key`` / ``.value``. One graph serves prefill (a past of length 0)
and decode (a past of the tokens so far).

The caller keeps the positions and the mask as ``model.generate`` does: each
token's position counts real tokens only (left padding: 0 there), and the
mask grows by one column per decode step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from torchparity.backends.hf_cache_path import mask_positions

if TYPE_CHECKING:
    from torchparity.backends.generation import Prompts


ENCODER_DECODER = (
    "the deployment paths' export of an encoder-decoder (an encoder graph and a "
    "decoder-with-past graph, as optimum exports it) is not built yet; decoder-only LMs only"
)


@dataclass(frozen=True)
class CacheGeometry:
    """The shape of each layer's cached key and value: [batch, heads, seq, head_dim]
    with batch and seq free (``heads``/``head_dim`` per layer, key then value)."""

    layers: int
    shapes: tuple[tuple[int, int], ...]  # (heads, head_dim) per cache tensor, 2 per layer
    dtype: torch.dtype

    def input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "position_ids", *self.past_names("past_key_values")]

    def output_names(self) -> list[str]:
        return ["logits", *self.past_names("present")]

    def past_names(self, prefix: str) -> list[str]:
        return [f"{prefix}.{i}.{kind}" for i in range(self.layers) for kind in ("key", "value")]

    def empty_past(self, batch: int, length: int = 0) -> list[torch.Tensor]:
        """A past of ``length`` positions per cache tensor (zeros; 0: prefill's)."""
        return [torch.zeros(batch, h, length, d, dtype=self.dtype) for h, d in self.shapes]


def cache_argument(model: torch.nn.Module) -> str:
    """The keyword the model takes its cache by (transformers 5.x renames
    ``past_key_values`` to ``cache``)."""
    import inspect

    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def unsupported_model(model: torch.nn.Module) -> str | None:
    """Why ``model`` has no past-kv-io form here, or None."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "get_output_embeddings"):
        return "the past-kv-io export wraps a Hugging Face causal LM; this module is not one"
    if getattr(config, "is_encoder_decoder", False):
        return ENCODER_DECODER
    return None


def case_unsupported(case: Any) -> str | None:
    """Why a case's generation has no past-kv-io or static-cache form here
    (checked before any cell runs), or None."""
    from torchparity.cases.generation import generation_of

    spec = generation_of(getattr(case, "extra", None) or {})
    if spec is not None and spec.is_encoder_decoder:
        return ENCODER_DECODER
    return None


def _present(out: Any) -> list[torch.Tensor]:
    cache = getattr(out, "cache", None)
    cache = cache if cache is not None else out.past_key_values
    return [t for layer in cache.layers for t in (layer.keys, layer.values)]


def cache_geometry(model: torch.nn.Module) -> CacheGeometry:
    """The model's cache layout, read from one call on a two-token prompt."""
    import transformers

    hf: Any = model  # a transformers model (nn.Module's attributes type as Tensor)
    ids = torch.zeros(1, 2, dtype=torch.int64, device=hf.device)
    cache = transformers.DynamicCache(config=hf.config)
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True, **{cache_argument(model): cache})
    tensors = _present(out)
    shapes = tuple((int(t.shape[1]), int(t.shape[3])) for t in tensors)
    return CacheGeometry(len(tensors) // 2, shapes, tensors[0].dtype)


class PastKeyValuesIO(torch.nn.Module):
    """``model`` with its cache as tensors in and out (see the module's docstring)."""

    def __init__(self, model: torch.nn.Module, geometry: CacheGeometry) -> None:
        super().__init__()
        self.model: Any = model  # a transformers model: its attributes are not nn.Module's
        self.layers = geometry.layers
        self.cache_arg = cache_argument(model)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        past: tuple[torch.Tensor, ...],
    ) -> tuple[torch.Tensor, ...]:
        import transformers

        cache = transformers.DynamicCache(config=self.model.config)
        if len(cache.layers) != self.layers:
            raise NotImplementedError(
                f"the model's cache has {len(cache.layers)} layers where its call returned "
                f"{self.layers}: no past-kv-io form"
            )
        layers: list[Any] = list(cache.layers)  # full-attention layers (checked above)
        for i, layer in enumerate(layers):
            # The past as the layer's own tensors: ``update`` would first concatenate
            # them to an empty 1-D tensor, which OpenVINO's frontend cannot convert.
            layer.lazy_initialization(past[2 * i], past[2 * i + 1])
            layer.keys, layer.values = past[2 * i], past[2 * i + 1]
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            **{self.cache_arg: cache},
        )
        return (out.logits, *_present(out))


def example_inputs(geometry: CacheGeometry, device: torch.device) -> tuple[Any, ...]:
    """Export-time inputs: batch 2, 3 new tokens over a past of 5, all sizes
    distinct and above 1 so no dim is specialised (pytorch#153896)."""
    batch, new, past = 2, 3, 5
    ids = torch.ones(batch, new, dtype=torch.int64, device=device)
    mask = torch.ones(batch, past + new, dtype=torch.int64, device=device)
    positions = torch.arange(past, past + new, device=device).expand(batch, new)
    cache = tuple(t.to(device) for t in geometry.empty_past(batch, past))
    return ids, mask, positions.contiguous(), cache


def dynamic_shapes(geometry: CacheGeometry) -> dict[str, Any]:
    """Every batch and sequence dim free (``Dim.AUTO``: the exporter relates them)."""
    auto = torch.export.Dim.AUTO
    token = {0: auto, 1: auto}
    return {
        "input_ids": token,
        "attention_mask": token,
        "position_ids": token,
        "past": tuple({0: auto, 2: auto} for _ in range(2 * geometry.layers)),
    }


@dataclass
class DecodeFeed:
    """What a past-kv-io path keeps between calls besides the cache: the mask so
    far and each sequence's next position."""

    mask: torch.Tensor
    positions: torch.Tensor

    @classmethod
    def after_prompt(cls, prompts: Prompts) -> DecodeFeed:
        mask = prompts.attention_mask.to(torch.int64)
        return cls(mask, mask.sum(dim=1))

    def step(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """The next decode call's token inputs (one token per sequence); advances."""
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        feed = {
            "input_ids": tokens.reshape(-1, 1).to(torch.int64),
            "attention_mask": self.mask,
            "position_ids": self.positions[:, None],
        }
        self.positions = self.positions + 1
        return feed


def prompt_feed(prompts: Prompts) -> dict[str, torch.Tensor]:
    """Prefill's token inputs."""
    mask = prompts.attention_mask.to(torch.int64)
    return {
        "input_ids": prompts.input_ids.to(torch.int64),
        "attention_mask": mask,
        "position_ids": mask_positions(mask),
    }
