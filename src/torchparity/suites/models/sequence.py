"""Sequence models over token ids: LSTM and GRU classifiers, a Transformer
encoder, and a scaled-dot-product attention block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torchparity import DynamicDim, register_model
from torchparity.suites.models.known import ONNX_CPU_BF16

VOCAB, SEQ = 1000, 32


class LSTMClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 64)
        self.rnn = nn.LSTM(64, 96, num_layers=2, batch_first=True)
        self.head = nn.Linear(96, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(ids))
        return self.head(out[:, -1])


class GRUClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 64)
        self.rnn = nn.GRU(64, 64, batch_first=True, bidirectional=True)
        self.head = nn.Linear(128, 5)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(ids))
        return self.head(out.mean(dim=1))


class TransformerTextEncoder(nn.Module):
    """Token + learned position embeddings, nn.TransformerEncoder, mean pooling.
    Returns a dict like a library model: {"logits", "pooled"}."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 64)
        self.pos = nn.Parameter(torch.zeros(1, SEQ, 64))
        layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.head = nn.Linear(64, 3)

    def forward(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.encoder(self.embed(ids) + self.pos[:, : ids.shape[1]])
        pooled = h.mean(dim=1)
        return {"logits": self.head(pooled), "pooled": pooled}


class AttentionBlock(nn.Module):
    """A pre-norm causal self-attention block on F.scaled_dot_product_attention."""

    def __init__(self, dim: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm(x)).chunk(3, dim=-1)
        q, k, v = (z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return x + self.proj(y.transpose(1, 2).reshape(b, t, d))


# Any batch and any sequence length (the transformer's learned positions stop at SEQ).
TOKENS = (DynamicDim("batch", {0: 0}, min=1, max=256), DynamicDim("seq", {0: 1}, min=2, max=256))
TOKENS_UP_TO_SEQ = (TOKENS[0], DynamicDim("seq", {0: 1}, min=2, max=SEQ))


def _ids(gen, batch: int) -> tuple:
    return (gen.integers(0, VOCAB, batch, SEQ),)


register_model(
    "lstm_classifier",
    LSTMClassifier,
    _ids,
    batch=8,
    suites=["models"],
    known_failures=[ONNX_CPU_BF16],
    dynamic=TOKENS,
    description="2-layer LSTM text classifier over token ids",
)
register_model(
    "gru_classifier",
    GRUClassifier,
    _ids,
    batch=8,
    suites=["models"],
    known_failures=[ONNX_CPU_BF16],
    dynamic=TOKENS,
    description="bidirectional GRU text classifier over token ids",
)
register_model(
    "transformer_encoder",
    TransformerTextEncoder,
    _ids,
    batch=8,
    suites=["models"],
    known_failures=[ONNX_CPU_BF16],
    dynamic=TOKENS_UP_TO_SEQ,
    description="nn.TransformerEncoder over token ids; dict output",
)
register_model(
    "attention_block",
    AttentionBlock,
    lambda g, b: (g.normal(b, SEQ, 64),),
    batch=8,
    suites=["models", "smoke"],
    known_failures=[ONNX_CPU_BF16],
    dynamic=TOKENS,
    description="causal scaled-dot-product attention block",
)
