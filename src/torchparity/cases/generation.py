"""A case's generation declaration (``--mode generate``; docs/generation.md).

A case that generates text declares :class:`Generation`: the prompt lengths of
its batch (left-padded, with an attention mask), the token budget, the end
token (ignored unless declared), and for an encoder-decoder the encoder's
inputs and the decoder's start token. The prompts are drawn from the case's
deterministic generator, so every path and every platform gets the same ids.
:func:`generation_module` builds the module that generates (the case's own,
or the declaration's ``model``) with torchparity's weights, its output head
scaled so greedy decoding is decisive rather than a walk over near-ties.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch

from torchparity.cases.inputs import InputGen, init_weights, seed_from

DEFAULT_MAX_NEW_TOKENS = 32


@dataclass(frozen=True)
class Prompts:
    """What prefill gets. Decoder-only: the prompt token ids, left-padded, and
    their mask. Encoder-decoder: ``encoder`` holds the encoder's inputs by
    keyword (input_ids + attention_mask for t5/bart, input_features for
    whisper) and ``input_ids`` the decoder's start tokens."""

    input_ids: torch.Tensor  # int64 [batch, prompt_len], left-padded
    attention_mask: torch.Tensor  # int64 [batch, prompt_len], 0 on padding
    encoder: Mapping[str, torch.Tensor] | None = None

    @property
    def batch(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def prompt_len(self) -> int:
        return int(self.input_ids.shape[1])

    def select(self, rows: slice) -> Prompts:
        """The prompts of ``rows`` (batch 1 from a batch), padding columns
        every selected row pads dropped (left padding: the leading ones)."""
        ids, mask = self.input_ids[rows], self.attention_mask[rows]
        keep = int(mask.sum(dim=1).max())
        ids, mask = ids[:, ids.shape[1] - keep :], mask[:, mask.shape[1] - keep :]
        encoder = None
        if self.encoder is not None:
            encoder = {k: v[rows] for k, v in self.encoder.items()}
        return Prompts(ids.contiguous(), mask.contiguous(), encoder)

    def to(self, device: torch.device, float_dtype: torch.dtype) -> Prompts:
        """On ``device``, floating encoder inputs (whisper's features) in ``float_dtype``."""

        def move(x: torch.Tensor) -> torch.Tensor:
            return x.to(device=device, dtype=float_dtype if x.is_floating_point() else x.dtype)

        encoder = None if self.encoder is None else {k: move(v) for k, v in self.encoder.items()}
        return Prompts(move(self.input_ids), move(self.attention_mask), encoder)


# An encoder-decoder's encoder inputs: (generator, batch) -> inputs by keyword.
EncoderInputs = Callable[[InputGen, int], Mapping[str, torch.Tensor]]


@dataclass(frozen=True)
class Generation:
    """How a case generates. ``prompt_lengths``: one prompt per entry (the
    batch), drawn from ``vocab_size`` ids below ``vocab_size - 1`` avoiding
    ``pad_token_id``, left-padded to the longest. ``model``: the module that
    generates when it is not the case's own (a ``*ForConditionalGeneration``
    beside a case that runs the bare encoder-decoder); it must accept
    ``input_ids``, ``attention_mask``, ``past_key_values`` and ``use_cache``
    and return ``.logits`` and ``.past_key_values`` (a Hugging Face causal or
    seq2seq LM). ``encoder``: an encoder-decoder's encoder inputs; the
    decoder then starts from ``decoder_start_token_id``. ``head_scale``
    multiplies the output head's weights after initialisation: tiny random
    models have nearly flat logits, and greedy decoding over near-ties
    measures rounding, not the path."""

    vocab_size: int
    prompt_lengths: tuple[int, ...] = (12, 7)
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    eos_token_id: int | None = None
    pad_token_id: int = 0
    model: Callable[[], torch.nn.Module] | None = None
    encoder: EncoderInputs | None = None
    decoder_start_token_id: int = 0
    head_scale: float = 8.0
    extra: dict[str, object] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if len(self.prompt_lengths) < 1 or min(self.prompt_lengths) < 1:
            raise ValueError("generation needs at least one prompt of length >= 1")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, not {self.max_new_tokens}")

    @property
    def batch(self) -> int:
        return len(self.prompt_lengths)

    @property
    def is_encoder_decoder(self) -> bool:
        return self.encoder is not None


def generation_of(extra: Mapping[str, object]) -> Generation | None:
    """A case's declaration (``Case.extra["generation"]``), or None."""
    spec = extra.get("generation")
    return spec if isinstance(spec, Generation) else None


def make_prompts(spec: Generation, case_name: str, seed: int) -> Prompts:
    """The case's prompts: ids from its deterministic generator, left-padded
    with ``pad_token_id`` to the longest prompt; an encoder-decoder's decoder
    prompt is its start token (no padding)."""
    gen = InputGen(case_name, seed, "generate")
    batch = spec.batch
    if spec.encoder is not None:
        encoder = dict(spec.encoder(gen, batch))
        ids = torch.full((batch, 1), spec.decoder_start_token_id, dtype=torch.int64)
        return Prompts(ids, torch.ones_like(ids), encoder)
    width = max(spec.prompt_lengths)
    ids = torch.full((batch, width), spec.pad_token_id, dtype=torch.int64)
    mask = torch.zeros((batch, width), dtype=torch.int64)
    for row, length in enumerate(spec.prompt_lengths):
        drawn = gen.integers(0, spec.vocab_size - 2, length)
        drawn = drawn + (drawn >= spec.pad_token_id).long()  # never the pad id
        ids[row, width - length :] = drawn
        mask[row, width - length :] = 1
    return Prompts(ids, mask)


def generation_module(
    spec: Generation,
    make_module: Callable[[], torch.nn.Module],
    case_name: str,
    seed: int,
    reinit: bool = True,
) -> torch.nn.Module:
    """The module that generates, in eval mode and float32, with the same
    weights on every platform and its output head scaled by ``head_scale``."""
    torch.manual_seed(seed_from(case_name, seed, "generate-module") % 2**63)
    module = (spec.model or make_module)()
    if reinit:
        init_weights(module, case_name, seed)
    if spec.head_scale != 1.0:
        _untied_head(module, spec.head_scale, (case_name, seed, "generate-head"))
    return module.eval()


def _untied_head(module: torch.nn.Module, scale: float, key: tuple[object, ...]) -> None:
    """Replace the output head (Hugging Face ``get_output_embeddings``) by one of
    its own, drawn from ``key`` and ``scale`` times PyTorch's default bound. A
    head tied to the input embeddings scores each token by its likeness to the
    current one, so a tiny random model repeats its last token whatever the
    context (and a broken cache would go unseen); scaling the flat logits makes
    greedy decoding decisive. A module without such a head is left as it is."""
    getter = getattr(module, "get_output_embeddings", None)
    setter = getattr(module, "set_output_embeddings", None)
    head = getter() if callable(getter) else None
    if not isinstance(head, torch.nn.Linear) or not callable(setter):
        return
    fresh = torch.nn.Linear(head.in_features, head.out_features, bias=head.bias is not None)
    bound = scale / math.sqrt(head.in_features)
    with torch.no_grad():
        fresh.weight.copy_(InputGen(*key).uniform(*fresh.weight.shape, low=-bound, high=bound))
        if fresh.bias is not None:
            fresh.bias.zero_()
    fresh.to(head.weight.dtype)
    setter(fresh)
    config = getattr(module, "config", None)
    if config is not None and hasattr(config, "tie_word_embeddings"):
        config.tie_word_embeddings = False  # a later tie_weights() must not undo it
