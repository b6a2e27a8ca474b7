"""Hugging Face GPT-2, tiny config with random weights (no download): its
output record holds the logits and a DynamicCache, which is not a tensor."""

import logging

import torch

from torchparity import register_model

logging.getLogger("transformers").setLevel(logging.ERROR)  # config chatter about token ids


def _gpt2() -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=512, n_positions=64)
    return GPT2LMHeadModel(config)


register_model(
    "gpt2_tiny",
    _gpt2,
    lambda gen, batch: (gen.integers(0, 512, batch, 16),),
    batch=2,
    suites=["gpt2"],
    description="GPT-2, 2 layers, 64 wide, random weights",
)
