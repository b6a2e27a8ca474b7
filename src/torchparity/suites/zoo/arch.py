"""An architecture of the zoo: how to build it and feed it, as data.

Nothing here imports the library a model comes from: registering the suite
stays cheap, and a missing library becomes a skip reason, not an import
error. ``hf`` builds a transformers model from a config class and its
keyword arguments (a tiny config, random weights: no download); ``CausalLMWithCache``
returns a decoder's KV cache as tensors, so every deployment path is judged
on the cache it hands to the next generation step, not only on the logits.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from torchparity import Generation, InputGen
from torchparity.cases.inputs import init_weights


@dataclass(frozen=True)
class Arch:
    """One zoo entry: ``name`` (the case is ``zoo.<name>``), its ``family``
    (encoder, decoder, seq2seq, vision, detection, audio, multimodal), the
    module factory and the input factory (keyword inputs), the distribution it
    needs (``requires``) and whether the ci selection holds it."""

    name: str
    family: str
    build: Callable[[], torch.nn.Module]
    inputs: Callable[[InputGen, int], Any]
    description: str
    requires: str = "transformers"
    ci: bool = False
    batch: int = 2
    tags: tuple[str, ...] = field(default_factory=tuple)
    reinit_weights: bool = True  # False: ``build`` draws the weights itself (``calibrated``)
    generation: Generation | None = None  # --mode generate (docs/generation.md)
    generate_ci: bool = False  # in the generate-ci selection (3 decoders, 1 encoder-decoder)


def hf(model_class: str, config_class: str, **config: Any) -> Callable[[], torch.nn.Module]:
    """A factory of ``transformers.<model_class>(transformers.<config_class>(**config))``."""

    def build() -> torch.nn.Module:
        transformers = importlib.import_module("transformers")
        return getattr(transformers, model_class)(_config(transformers, config_class, config))

    build.__qualname__ = f"hf_{model_class}"
    return build


def _config(transformers: Any, config_class: str, config: dict[str, Any]) -> Any:
    """The config, with nested configs (``("ResNetConfig", {...})`` values) built too."""
    resolved = {
        key: _config(transformers, value[0], value[1])
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], dict)
        else value
        for key, value in config.items()
    }
    return getattr(transformers, config_class)(**resolved)


class CausalLMWithCache(torch.nn.Module):
    """A causal LM called with ``use_cache=True``, returning the logits and the
    KV cache's key and value tensors per layer (what a generation loop feeds
    back), since a library's cache object is not a tensor any backend returns."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> dict[str, Any]:
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=True)
        layers = out.past_key_values.layers
        return {"logits": out.logits, "present": tuple((la.keys, la.values) for la in layers)}


def with_cache(build: Callable[[], torch.nn.Module]) -> Callable[[], torch.nn.Module]:
    """``build``'s causal LM returning its KV cache too (:class:`CausalLMWithCache`)."""

    def build_with_cache() -> torch.nn.Module:
        return CausalLMWithCache(build())

    return build_with_cache


def calibrated(
    build: Callable[[], torch.nn.Module], inputs: Callable[[InputGen, int], Any], name: str
) -> Callable[[], torch.nn.Module]:
    """``build``'s model with deterministic weights and BatchNorm statistics
    measured on a calibration batch (in fp64), as a trained network's match its
    activations. For deep BatchNorm stacks (MobileViT): with random running
    statistics their offsets swamp the shrinking signal and the output stops
    depending on the input. The case registers with ``reinit_weights=False``:
    the weights are drawn here, by torchparity's initialisation."""

    def build_calibrated() -> torch.nn.Module:
        model = init_weights(build(), "zoo", name).double()
        norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average over the calibration batch
        batch = inputs(InputGen("zoo", name, "calibration"), 8)
        with torch.no_grad():
            model.train()(**{k: v for k, v in batch.items() if isinstance(v, torch.Tensor)})
        for norm in norms:
            norm.momentum = 0.1
        return model.float().eval()

    return build_calibrated


def import_name(module: str, attribute: str, **kwargs: Any) -> Callable[[], torch.nn.Module]:
    """A factory of ``module.attribute(**kwargs)`` (torchvision's and timm's builders)."""

    def build() -> torch.nn.Module:
        return getattr(importlib.import_module(module), attribute)(**kwargs)

    return build
