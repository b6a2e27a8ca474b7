"""Cases for the C++ runner tests: int64 token ids and a bool mask in, nested
outputs (a tuple holding a dict) with float, int64 and bool leaves out."""

import torch

from torchparity import register_model


class Tagger(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(50, 8)
        self.head = torch.nn.Linear(8, 3)

    def forward(
        self, ids: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hidden = self.embed(ids) * mask.unsqueeze(-1).to(self.head.weight.dtype)
        logits = self.head(hidden).mean(dim=1)
        return logits, {"label": logits.argmax(dim=1), "positive": logits > 0}


register_model(
    "native_tagger",
    Tagger,
    lambda gen, batch: (gen.integers(0, 50, batch, 6), gen.integers(0, 2, batch, 6) > 0),
    batch=4,
    suites=["native"],
)
