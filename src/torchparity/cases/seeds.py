"""Seed sources of op cases: fixed inputs checked before hypothesis searches.

A plugin registers a function ``(case, dtype) -> list of argument tuples``
(or an empty list); ``torchparity fuzz`` checks every seed of an op before its
strategy's examples. The opinfo suite registers one that gives OpInfo's
sample inputs for the catalog op of the same name, so the samples PyTorch's
own tests rely on (broadcasting, empty and 0-d tensors, extremes) seed the search.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from torchparity.cases.case import Case

SeedSource = Callable[[Case, torch.dtype], list[tuple]]
SOURCES: list[SeedSource] = []
MAX_SEEDS = 16  # per property: seeds run outside the time budget's rounds


def register_seed_source(source: SeedSource) -> SeedSource:
    SOURCES.append(source)
    return source


def seeds_for(case: Case, dtype: torch.dtype) -> list[tuple]:
    """The seeds every source gives ``case`` at ``dtype`` (a failing source gives none)."""
    seeds: list[tuple] = []
    for source in SOURCES:
        try:
            seeds += source(case, dtype)
        except Exception:  # noqa: BLE001 - a seed source is a help, never a reason for the property to fail
            continue
    return seeds[:MAX_SEEDS]
