"""A LightningModule as a training case (loaded with --case-file; needs lightning)."""

import lightning as L
import torch
import torch.nn.functional as F

from torchparity.cell.lightning_case import register_lightning


class LitClassifier(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)


register_lightning(
    "lit_classifier",
    LitClassifier,
    lambda gen, batch: (gen.normal(batch, 16),),
    lambda gen, batch: gen.integers(0, 4, batch),
    batch=8,
    suites=["lightning"],
)
