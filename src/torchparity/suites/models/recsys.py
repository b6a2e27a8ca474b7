"""A recommender: EmbeddingBag over sparse ids plus a dense MLP (DLRM-like).
Returns a dataclass, as library models return output records."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from torchparity import DynamicDim, register_model
from torchparity.suites.models.known import ONNX_CPU_BF16, SCRIPTED_DATACLASS_OUTPUT

NUM_ITEMS, BAG, DENSE = 5000, 8, 13


@dataclass
class RecommenderOutput:
    score: torch.Tensor
    user_vector: torch.Tensor


class EmbeddingBagRecommender(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.items = nn.EmbeddingBag(NUM_ITEMS, 32, mode="mean")
        self.dense = nn.Sequential(nn.Linear(DENSE, 32), nn.ReLU())
        self.top = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, dense: torch.Tensor, item_ids: torch.Tensor) -> RecommenderOutput:
        user = torch.cat([self.dense(dense), self.items(item_ids)], dim=1)
        return RecommenderOutput(score=torch.sigmoid(self.top(user)), user_vector=user)


register_model(
    "embedding_bag_recsys",
    EmbeddingBagRecommender,
    lambda g, b: (g.normal(b, DENSE), g.integers(0, NUM_ITEMS, b, BAG)),
    batch=64,
    suites=["models"],
    known_failures=[ONNX_CPU_BF16, *SCRIPTED_DATACLASS_OUTPUT],
    dynamic=[
        DynamicDim("batch", {0: 0, 1: 0}, min=1, max=1024),
        DynamicDim("bag", {1: 1}, min=1, max=64),
    ],
    description="EmbeddingBag + MLP recommender; dataclass output",
)
