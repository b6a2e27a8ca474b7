"""The zoo's input factories: keyword inputs as a tokenizer, an image or an
audio processor would hand them to the model, with realistic padding.

Every batch holds one unpadded sequence and others padded on the right to
between half and all of the length: the attention mask is 0 on padding and
the padded positions hold the pad token, as a tokenizer's batch does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from torchparity import InputGen

Factory = Callable[[InputGen, int], Any]


def lengths(gen: InputGen, batch: int, full: int) -> torch.Tensor:
    """Sequence lengths in [full/2, full], the first one full."""
    drawn = gen.integers(full // 2, full + 1, batch)
    drawn[0] = full
    return drawn


def padded_tokens(
    gen: InputGen, batch: int, vocab: int, seq: int, pad: int, eos: int | None = None
) -> tuple:
    """(input_ids, attention_mask): random ids below ``vocab - 1`` (never the pad
    id; the last id is left for an end token), right padding; with ``eos``, each
    sequence ends in that token, as a tokenizer closes it."""
    ids = gen.integers(0, vocab - 2, batch, seq)
    ids = ids + (ids >= pad).long()  # skip the pad id
    mask = (torch.arange(seq) < lengths(gen, batch, seq)[:, None]).long()
    ids = ids.masked_fill(mask == 0, pad)
    if eos is not None:
        ids[torch.arange(batch), mask.sum(dim=1) - 1] = eos
    return ids, mask


def text(vocab: int, seq: int, pad: int = 0, eos: int | None = None, **literals: Any) -> Factory:
    """``input_ids`` and ``attention_mask`` (plus literal keywords, e.g. use_cache=False)."""

    def make(gen: InputGen, batch: int) -> dict[str, Any]:
        ids, mask = padded_tokens(gen, batch, vocab, seq, pad, eos)
        return {"input_ids": ids, "attention_mask": mask, **literals}

    make.__qualname__ = "text_inputs"
    return make


def seq2seq(vocab: int, seq: int, target: int, start: int, pad: int = 0) -> Factory:
    """An encoder batch plus ``decoder_input_ids`` that begin with the start token."""

    def make(gen: InputGen, batch: int) -> dict[str, Any]:
        ids, mask = padded_tokens(gen, batch, vocab, seq, pad)
        decoder, _ = padded_tokens(gen, batch, vocab, target, pad)
        decoder[:, 0] = start
        return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": decoder}

    make.__qualname__ = "seq2seq_inputs"
    return make


def image(size: int, channels: int = 3, mask: bool = False) -> Factory:
    """``pixel_values`` as a normalising image processor leaves them (mean 0,
    unit spread); with ``mask``, a ``pixel_mask`` (DETR's padded batch: the
    second image is narrower and padded on the right)."""

    def make(gen: InputGen, batch: int) -> dict[str, Any]:
        pixels = gen.normal(batch, channels, size, size)
        if not mask:
            return {"pixel_values": pixels}
        widths = lengths(gen, batch, size)
        valid = (torch.arange(size) < widths[:, None]).long()[:, None, :].expand(batch, size, size)
        pixels = pixels * valid[:, None].to(pixels.dtype)
        return {"pixel_values": pixels, "pixel_mask": valid.contiguous()}

    make.__qualname__ = "image_inputs"
    return make


def audio(samples: int) -> Factory:
    """``input_values`` (a normalised waveform) and ``attention_mask``: shorter
    clips are zero-padded on the right, as the feature extractor pads them."""

    def make(gen: InputGen, batch: int) -> dict[str, Any]:
        mask = (torch.arange(samples) < lengths(gen, batch, samples)[:, None]).long()
        wave = gen.normal(batch, samples) * mask.to(torch.float64)
        return {"input_values": wave, "attention_mask": mask}

    make.__qualname__ = "audio_inputs"
    return make


def log_mel(mel_bins: int, frames: int, vocab: int, target: int, start: int) -> Factory:
    """Whisper's input: ``input_features`` (log-mel frames, always padded to the
    full window by its feature extractor) and ``decoder_input_ids``."""

    def make(gen: InputGen, batch: int) -> dict[str, Any]:
        features = gen.uniform(batch, mel_bins, frames, low=-1.0, high=1.0)
        decoder = gen.integers(1, vocab, batch, target)
        decoder[:, 0] = start
        return {"input_features": features, "decoder_input_ids": decoder}

    make.__qualname__ = "log_mel_inputs"
    return make
