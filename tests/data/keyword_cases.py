"""A Hugging Face model with keyword inputs and no wrapper module (loaded
with --case-file): a tiny BERT built from a config, random weights, no download."""

import torch
from transformers import BertConfig, BertModel

from torchparity import register_model

VOCAB, SEQ = 128, 16


def tiny_bert() -> BertModel:
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=SEQ,
    )
    return BertModel(config)


def bert_inputs(gen, batch):
    lengths = gen.integers(SEQ // 2, SEQ + 1, batch, 1)  # padded sequences of different lengths
    return {
        "input_ids": gen.integers(0, VOCAB, batch, SEQ),
        "attention_mask": (torch.arange(SEQ) < lengths).long(),
    }


register_model("tiny_bert", tiny_bert, bert_inputs, batch=2, suites=["keywords"])


class Scaled(torch.nn.Module):
    """Positional and keyword inputs together, and a literal keyword."""

    def forward(self, x: torch.Tensor, scale: torch.Tensor, double: bool = False) -> torch.Tensor:
        y = x * scale
        return y * 2 if double else y


register_model(
    "positional_and_keyword",
    Scaled,
    lambda gen, batch: ((gen.normal(batch, 4),), {"scale": gen.normal(batch, 4), "double": True}),
    batch=2,
    suites=["keywords"],
)
