"""Speech architectures: Whisper (log-mel encoder-decoder) and the wav2vec2
family (convolutional feature encoder over raw audio), tiny configs."""

from __future__ import annotations

from typing import Any

from torchparity import Generation, InputGen
from torchparity.suites.zoo import inputs
from torchparity.suites.zoo.arch import Arch, hf
from torchparity.suites.zoo.text import ENCODER_DECODER

WHISPER = {
    **ENCODER_DECODER,
    "vocab_size": 256,
    "num_mel_bins": 16,
    "max_source_positions": 32,
    "max_target_positions": 32,
    "decoder_start_token_id": 1,
    "pad_token_id": 0,
}


def whisper_features(gen: InputGen, batch: int) -> dict[str, Any]:
    """Whisper's encoder input: log-mel frames, as ``inputs.log_mel`` draws them."""
    return {"input_features": gen.uniform(batch, 16, 64, low=-1.0, high=1.0)}


# Generation: the decoder from its start token; 64 target positions hold 1 + 32 new tokens.
WHISPER_GENERATE = Generation(
    256,
    model=hf(
        "WhisperForConditionalGeneration",
        "WhisperConfig",
        **{**WHISPER, "max_target_positions": 64},
    ),
    encoder=whisper_features,
    decoder_start_token_id=1,
)

# A 2-layer convolutional feature encoder: 1600 samples -> 159 frames.
WAVE = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (16, 16),
    "conv_stride": (5, 2),
    "conv_kernel": (10, 3),
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
    # layer-norm feature encoder: the variant that reads the attention mask
    "feat_extract_norm": "layer",
    "do_stable_layer_norm": True,
}
AUDIO = inputs.audio(1600)

SPEECH = [
    Arch(
        "whisper",
        "audio",
        hf("WhisperModel", "WhisperConfig", **WHISPER),
        inputs.log_mel(16, 64, 256, 8, start=1),
        "Whisper encoder-decoder (log-mel convolutions, decoder ids)",
        ci=True,
        generation=WHISPER_GENERATE,
    ),
    Arch(
        "wav2vec2",
        "audio",
        hf("Wav2Vec2Model", "Wav2Vec2Config", **WAVE),
        AUDIO,
        "wav2vec 2.0 (conv feature encoder, conv positions; padded clips)",
        ci=True,
    ),
    Arch(
        "hubert",
        "audio",
        hf("HubertModel", "HubertConfig", **WAVE),
        AUDIO,
        "HuBERT (wav2vec2 encoder, its own head)",
    ),
]
