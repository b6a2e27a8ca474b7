"""Models whose reference output is constant (loaded with --case-file): a
tiny ViT whose head is zero-initialised, as torchvision's is, and a model
that ignores its input."""

import torch
from torch import nn

from torchparity import register_model


class TinyViT(nn.Module):
    """Patch embedding, a class token, one encoder layer and a zero-initialised head."""

    def __init__(self) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, 16, kernel_size=4, stride=4)
        self.cls = nn.Parameter(torch.zeros(1, 1, 16))
        self.encoder = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.head = nn.Linear(16, 10)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1)
        return self.head(self.encoder(tokens)[:, 0])


class IgnoresInput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.linspace(-1, 1, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(x.shape[0], 4) + 0 * x.sum()


def _images(gen, batch):
    return (gen.normal(batch, 3, 16, 16),)


def _vectors(gen, batch):
    return (gen.normal(batch, 8),)


register_model("vit_zero_head", TinyViT, _images, batch=2, suites=["constant"])
register_model(
    "vit_zero_head_kept", TinyViT, _images, batch=2, reinit_weights=False, suites=["constant"]
)
register_model("ignores_input", IgnoresInput, _vectors, batch=2, suites=["constant"])
register_model(
    "ignores_input_declared",
    IgnoresInput,
    _vectors,
    batch=2,
    constant_output_ok=True,
    suites=["constant"],
)
