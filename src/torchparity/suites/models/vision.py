"""Vision models: MLP, LeNet, a CIFAR-10 CNN, a small ResNet, a mobile CNN, a conv autoencoder."""

from __future__ import annotations

import torch
from torch import nn

from torchparity import DynamicDim, InputGen, register_model
from torchparity.suites.models.known import ONNX_CPU_BF16


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.GELU(), nn.Linear(128, 10)
    )


class LeNet(nn.Module):
    """LeNet-5 on 1x28x28 (MNIST-style), with max pooling and ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def cifar_cnn() -> nn.Module:
    """The classic small CIFAR-10 convnet."""
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 8 * 8, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    )


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet-8-style network for 3x32x32: residual blocks with BatchNorm."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        self.layers = nn.Sequential(
            BasicBlock(16, 16, 1), BasicBlock(16, 32, 2), BasicBlock(32, 64, 2)
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


def _separable(cin: int, cout: int, stride: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU6(),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.Hardswish(),
    )


def mobile_cnn() -> nn.Module:
    """MobileNet-style depthwise-separable blocks (ReLU6, Hardswish)."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, 2, 1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU6(),
        _separable(16, 32, 1),
        _separable(32, 64, 2),
        _separable(64, 64, 1),
        _separable(64, 128, 2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(128, 10),
    )


class ConvAutoencoder(nn.Module):
    """Conv encoder, then a decoder with nearest upsampling and a transposed conv.
    Returns (reconstruction, latent)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.ReLU()
        )
        self.decoder = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(32, 16, 3, 1, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 2, stride=2),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        latent = self.encoder(x)
        return self.decoder(latent), latent


# Every vision model takes any batch (the image size is fixed by its layers).
BATCH = DynamicDim("batch", {0: 0}, min=1, max=256)


def _images(channels: int, size: int):
    def make(gen: InputGen, batch: int) -> tuple:
        return (gen.normal(batch, channels, size, size),)

    return make


register_model(
    "mlp",
    mlp,
    lambda g, b: (g.normal(b, 64),),
    batch=32,
    suites=["models", "smoke"],
    known_failures=[ONNX_CPU_BF16],
    dynamic=[BATCH],
    description="3-layer MLP, ReLU and GELU",
)
register_model(
    "lenet",
    LeNet,
    _images(1, 28),
    batch=16,
    suites=["models", "smoke"],
    known_failures=[ONNX_CPU_BF16],
    dynamic=[BATCH],
    description="LeNet-5 CNN on 1x28x28",
)
register_model(
    "cifar_cnn",
    cifar_cnn,
    _images(3, 32),
    batch=8,
    suites=["models"],
    known_failures=[ONNX_CPU_BF16],
    dynamic=[BATCH],
    description="CIFAR-10 convnet on 3x32x32",
)
register_model(
    "resnet_small",
    SmallResNet,
    _images(3, 32),
    batch=8,
    suites=["models"],
    known_failures=[ONNX_CPU_BF16],
    dynamic=[BATCH],
    description="ResNet-8-style, residual blocks with BatchNorm",
)
register_model(
    "mobile_cnn",
    mobile_cnn,
    _images(3, 64),
    batch=8,
    suites=["models"],
    known_failures=[ONNX_CPU_BF16],
    dynamic=[BATCH],
    description="depthwise-separable mobile CNN, ReLU6/Hardswish",
)
register_model(
    "conv_autoencoder",
    ConvAutoencoder,
    _images(1, 28),
    batch=8,
    suites=["models"],
    known_failures=[ONNX_CPU_BF16],
    dynamic=[BATCH],
    description="conv autoencoder with upsampling; (recon, latent) output",
)
