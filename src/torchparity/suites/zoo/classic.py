"""Classic vision models from torchvision and timm, in the suite where their
library imports: small inputs, the real builders, random weights."""

from __future__ import annotations

from torchparity import InputGen
from torchparity.suites.zoo.arch import Arch, import_name


def IMAGE(gen: InputGen, batch: int) -> tuple:  # noqa: N802 - used as the other modules' constants
    """A normalised 64x64 batch, positional: these models take ``forward(x)``."""
    return (gen.normal(batch, 3, 64, 64),)


CLASSIC = [
    Arch(
        "torchvision_resnet18",
        "vision",
        import_name("torchvision.models", "resnet18", num_classes=10),
        IMAGE,
        "torchvision ResNet-18",
        requires="torchvision",
    ),
    Arch(
        "torchvision_mobilenet_v3_small",
        "vision",
        import_name("torchvision.models", "mobilenet_v3_small", num_classes=10),
        IMAGE,
        "torchvision MobileNetV3-Small (hard-swish, squeeze-excitation)",
        requires="torchvision",
    ),
    Arch(
        "timm_resnet10t",
        "vision",
        import_name("timm", "create_model", model_name="resnet10t", num_classes=10),
        IMAGE,
        "timm ResNet-10-T (tiered stem)",
        requires="timm",
    ),
]
