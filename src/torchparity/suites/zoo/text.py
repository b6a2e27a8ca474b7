"""Text architectures: encoders, decoders (with and without the KV cache in
their output) and encoder-decoders, each a tiny config of the real model class."""

from __future__ import annotations

from typing import Any

from torchparity import Generation, InputGen
from torchparity.suites.zoo import inputs
from torchparity.suites.zoo.arch import Arch, hf, with_cache

VOCAB, SEQ, TARGET = 256, 16, 8
# The shape every text model shares: 2 layers, width 32, 2 heads.
SMALL = {
    "vocab_size": VOCAB,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}
# Decoders: 4 query heads over 2 key/value heads (grouped-query attention) where the model has it.
DECODER = {**SMALL, "num_attention_heads": 4, "num_key_value_heads": 2}
# BART-style encoder-decoders (BART, Whisper): 2 + 2 layers, width 32, 2 heads.
ENCODER_DECODER = {
    "d_model": 32,
    "encoder_layers": 2,
    "decoder_layers": 2,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
}
NO_CACHE = inputs.text(VOCAB, SEQ, use_cache=False)
TOKENS = inputs.text(VOCAB, SEQ)
# Generation (--mode generate): two left-padded prompts of 12 and 7 tokens, greedy.
GENERATE = Generation(VOCAB)


def encoder_text(gen: InputGen, batch: int) -> dict[str, Any]:
    """An encoder-decoder's encoder prompts (right-padded, as its tokenizer pads them)."""
    ids, mask = inputs.padded_tokens(gen, batch, VOCAB, 12, 0)
    return {"input_ids": ids, "attention_mask": mask}


def _encoder(name: str, model: str, config: str, desc: str, pad: int = 0, **cfg) -> Arch:
    return Arch(
        name, "encoder", hf(model, config, **{**SMALL, **cfg}), inputs.text(VOCAB, SEQ, pad), desc
    )


ENCODERS = [
    Arch(
        "bert", "encoder", hf("BertModel", "BertConfig", **SMALL), TOKENS, "BERT encoder", ci=True
    ),
    _encoder(
        "roberta",
        "RobertaModel",
        "RobertaConfig",
        "RoBERTa encoder (pad id 1)",
        pad=1,
        pad_token_id=1,
    ),
    Arch(
        "distilbert",
        "encoder",
        hf(
            "DistilBertModel",
            "DistilBertConfig",
            vocab_size=VOCAB,
            dim=32,
            n_layers=2,
            n_heads=2,
            hidden_dim=64,
            max_position_embeddings=64,
        ),
        TOKENS,
        "DistilBERT encoder",
    ),
    _encoder(
        "albert",
        "AlbertModel",
        "AlbertConfig",
        "ALBERT (shared layers, factorised embedding)",
        embedding_size=16,
    ),
    _encoder(
        "electra",
        "ElectraModel",
        "ElectraConfig",
        "ELECTRA discriminator encoder",
        embedding_size=16,
    ),
    _encoder(
        "deberta_v2",
        "DebertaV2Model",
        "DebertaV2Config",
        "DeBERTa-v2 (disentangled relative-position attention)",
        relative_attention=True,
        position_buckets=8,
        pos_att_type=["p2c", "c2p"],
    ),
]


def _decoder(
    name: str, model: str, config: str, desc: str, ci: bool = False, gen_ci: bool = False, **cfg
) -> Arch:
    build = hf(model, config, **{**DECODER, **cfg})
    return Arch(
        name, "decoder", build, NO_CACHE, desc, ci=ci, generation=GENERATE, generate_ci=gen_ci
    )


def _cached(arch: Arch, ci: bool = False) -> Arch:
    """The same decoder, returning its KV cache beside the logits."""
    return Arch(  # the cache variant generates as its decoder does: no declaration of its own
        f"{arch.name}_kv_cache",
        "decoder",
        with_cache(arch.build),
        TOKENS,
        f"{arch.description}; logits and the KV cache (keys, values per layer)",
        ci=ci,
    )


GPT2 = Arch(
    "gpt2",
    "decoder",
    hf(
        "GPT2LMHeadModel",
        "GPT2Config",
        vocab_size=VOCAB,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=2,
        bos_token_id=VOCAB - 1,  # the end-of-text id inside the tiny vocabulary
        eos_token_id=VOCAB - 1,
    ),
    NO_CACHE,
    "GPT-2 causal LM (learned positions)",
    ci=True,
    generation=GENERATE,  # its end token (255) is ignored: no eos_token_id declared
    generate_ci=True,
)
LLAMA = _decoder(
    "llama",
    "LlamaForCausalLM",
    "LlamaConfig",
    "Llama causal LM (RoPE, RMSNorm, GQA, SwiGLU)",
    gen_ci=True,
)
QWEN2 = _decoder(
    "qwen2", "Qwen2ForCausalLM", "Qwen2Config", "Qwen2 causal LM (GQA, qkv bias)", gen_ci=True
)

DECODERS = [
    GPT2,
    _cached(GPT2),
    LLAMA,
    _cached(LLAMA, ci=True),
    _decoder(
        "mistral",
        "MistralForCausalLM",
        "MistralConfig",
        "Mistral causal LM (sliding-window attention over 8 tokens)",
        sliding_window=8,
    ),
    QWEN2,
    _cached(QWEN2),
    _decoder(
        "phi",
        "PhiForCausalLM",
        "PhiConfig",
        "Phi causal LM (partial rotary, parallel attention and MLP)",
        num_key_value_heads=4,  # partial rotary: the config's default factor, 0.5
    ),
    _decoder(
        "gemma",
        "GemmaForCausalLM",
        "GemmaConfig",
        "Gemma causal LM (GeGLU, head_dim 16)",
        head_dim=16,
    ),
    Arch(
        "gpt_neox",
        "decoder",
        hf("GPTNeoXForCausalLM", "GPTNeoXConfig", **SMALL),  # rotary on a quarter: the default
        NO_CACHE,
        "GPT-NeoX causal LM (partial rotary, parallel residual)",
        generation=GENERATE,
    ),
    Arch(
        "opt",
        "decoder",
        hf(
            "OPTForCausalLM",
            "OPTConfig",
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            ffn_dim=64,
            num_attention_heads=2,
            word_embed_proj_dim=32,
            max_position_embeddings=64,
        ),
        NO_CACHE,
        "OPT causal LM",
        generation=GENERATE,
    ),
    Arch(
        "bloom",
        "decoder",
        hf(
            "BloomForCausalLM", "BloomConfig", vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=2
        ),
        NO_CACHE,
        "BLOOM causal LM (ALiBi positions)",
        generation=GENERATE,
    ),
]

T5 = {
    "vocab_size": VOCAB,
    "d_model": 32,
    "d_kv": 16,
    "d_ff": 64,
    "num_layers": 2,
    "num_heads": 2,
    "decoder_start_token_id": 0,
}
BART = {**ENCODER_DECODER, "vocab_size": VOCAB, "max_position_embeddings": 64}

SEQ2SEQ = [
    Arch(
        "t5",
        "seq2seq",
        hf("T5Model", "T5Config", **T5),
        inputs.seq2seq(VOCAB, SEQ, TARGET, start=0),
        "T5 encoder-decoder (relative position buckets)",
        ci=True,
        generation=Generation(
            VOCAB,
            model=hf("T5ForConditionalGeneration", "T5Config", **T5),
            encoder=encoder_text,
            decoder_start_token_id=0,
        ),
        generate_ci=True,
    ),
    Arch(
        "bart",
        "seq2seq",
        hf("BartModel", "BartConfig", **BART),
        inputs.seq2seq(VOCAB, SEQ, TARGET, start=2, pad=1),
        "BART encoder-decoder (pad id 1)",
        generation=Generation(
            VOCAB,
            model=hf("BartForConditionalGeneration", "BartConfig", **BART),
            encoder=encoder_text,
            decoder_start_token_id=2,
            pad_token_id=1,
        ),
    ),
]
