"""Speech architectures: Whisper (log-mel encoder-decoder) and the wav2vec2
family (convolutional feature encoder over raw audio), tiny configs."""

from __future__ import annotations

from torchparity.suites.zoo import inputs
from torchparity.suites.zoo.arch import Arch, hf
from torchparity.suites.zoo.text import ENCODER_DECODER

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
        hf(
            "WhisperModel",
            "WhisperConfig",
            **ENCODER_DECODER,
            vocab_size=256,
            num_mel_bins=16,
            max_source_positions=32,
            max_target_positions=32,
            decoder_start_token_id=1,
            pad_token_id=0,
        ),
        inputs.log_mel(16, 64, 256, 8, start=1),
        "Whisper encoder-decoder (log-mel convolutions, decoder ids)",
        ci=True,
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
