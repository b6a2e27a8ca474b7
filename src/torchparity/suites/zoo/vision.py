"""Vision backbones and a detector, and the CLIP/SigLIP towers, each a tiny
config of the real model class on 32x32 or 64x64 images."""

from __future__ import annotations

from typing import Any

from torchparity.suites.zoo import inputs
from torchparity.suites.zoo.arch import Arch, calibrated, hf
from torchparity.suites.zoo.text import SEQ, SMALL, VOCAB

IMAGE = inputs.image(32)
# A ViT-style transformer: 32x32 images in 8x8 patches, width 32, 2 layers.
VIT: dict[str, Any] = {
    "image_size": 32,
    "patch_size": 8,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
DINO: dict[str, Any] = {k: v for k, v in VIT.items() if k != "intermediate_size"}
STAGES: dict[str, Any] = {"hidden_sizes": [8, 16], "depths": [1, 1]}


def _vision(name: str, model: str, config: str, desc: str, ci: bool = False, **cfg) -> Arch:
    return Arch(name, "vision", hf(model, config, **cfg), IMAGE, desc, ci=ci)


VISION = [
    _vision("vit", "ViTModel", "ViTConfig", "ViT image encoder", ci=True, **VIT),
    _vision("deit", "DeiTModel", "DeiTConfig", "DeiT (class and distillation tokens)", **VIT),
    _vision(
        "dinov2",
        "Dinov2Model",
        "Dinov2Config",
        "DINOv2 (layer scale, interpolated positions)",
        **DINO,
        mlp_ratio=2,
    ),
    _vision(
        "swin",
        "SwinModel",
        "SwinConfig",
        "Swin transformer (shifted windows, patch merging)",
        image_size=32,
        patch_size=4,
        embed_dim=16,
        depths=[1, 1],
        num_heads=[1, 2],
        window_size=4,
    ),
    _vision(
        "convnext",
        "ConvNextModel",
        "ConvNextConfig",
        "ConvNeXt (depthwise 7x7, LayerNorm, layer scale)",
        ci=True,
        num_stages=2,
        **STAGES,
    ),
    _vision(
        "resnet",
        "ResNetModel",
        "ResNetConfig",
        "ResNet (basic blocks, BatchNorm)",
        ci=True,
        embedding_size=8,
        layer_type="basic",
        **STAGES,
    ),
    _vision(
        "regnet",
        "RegNetModel",
        "RegNetConfig",
        "RegNet (grouped convolutions, squeeze-excitation)",
        embedding_size=8,
        groups_width=8,
        **STAGES,
    ),
    Arch(
        "mobilevit",
        "vision",
        calibrated(
            hf(
                "MobileViTModel",
                "MobileViTConfig",
                image_size=64,
                patch_size=2,
                hidden_sizes=[16, 16, 16],
                neck_hidden_sizes=[8, 8, 16, 16, 16, 16, 32],
                num_attention_heads=2,
                mlp_ratio=2.0,
            ),
            inputs.image(64),
            "mobilevit",
        ),
        inputs.image(64),
        "MobileViT (inverted residuals, unfolded-patch attention; calibrated BatchNorm)",
        reinit_weights=False,
    ),
    _vision(
        "mobilenet_v2",
        "MobileNetV2Model",
        "MobileNetV2Config",
        "MobileNetV2 (depthwise separable, ReLU6, width 0.25)",
        image_size=32,
        depth_multiplier=0.25,
    ),
    _vision(
        "segformer",
        "SegformerModel",
        "SegformerConfig",
        "SegFormer encoder (overlapping patches, efficient attention)",
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        num_attention_heads=[1, 2],
        patch_sizes=[7, 3],
        strides=[4, 2],
        mlp_ratios=[2, 2],
    ),
]

DETECTION = [
    Arch(
        "detr",
        "detection",
        hf(
            "DetrForObjectDetection",
            "DetrConfig",
            # transformers 4.x: no timm backbone, no pretrained weights (5.x has neither option)
            use_timm_backbone=False,
            use_pretrained_backbone=False,
            backbone_config=(
                "ResNetConfig",
                {**STAGES, "embedding_size": 8, "layer_type": "basic", "out_features": ["stage2"]},
            ),
            d_model=32,
            encoder_layers=1,
            decoder_layers=1,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            num_queries=8,
            num_labels=4,
        ),
        inputs.image(64, mask=True),
        "DETR detector (ResNet backbone, sine positions, object queries; padded batch mask)",
    ),
]

MULTIMODAL = [
    Arch(
        "clip_text",
        "multimodal",
        hf(
            "CLIPTextModel",
            "CLIPTextConfig",
            **{**SMALL, "max_position_embeddings": SEQ},
            bos_token_id=VOCAB - 2,
            eos_token_id=VOCAB - 1,
            pad_token_id=0,
        ),
        inputs.text(VOCAB, SEQ, eos=VOCAB - 1),
        "CLIP text tower (causal mask, pooled at each sequence's end token)",
        ci=True,
    ),
    Arch(
        "clip_vision",
        "multimodal",
        hf("CLIPVisionModel", "CLIPVisionConfig", **VIT),
        IMAGE,
        "CLIP vision tower (pre-LayerNorm, quick GELU)",
    ),
    Arch(
        "siglip_vision",
        "multimodal",
        hf("SiglipVisionModel", "SiglipVisionConfig", **VIT),
        IMAGE,
        "SigLIP vision tower (attention-pooling head)",
    ),
]
