"""LightningModules as cases: ``register_lightning`` registers a model case
whose train cells are driven by the module's own ``training_step(batch,
batch_idx)`` (the batch is ``(*inputs, target)``) and
``configure_optimizers()`` (an optimizer, a list, or a dict with
``"optimizer"``; schedulers are not stepped), without a Lightning Trainer: the
harness is the loop, so the verdict compares exactly the module's step with
the same step in fp64. Infer cells call the module's ``forward``.

Lightning itself is imported by the user's module, never here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from torchparity.cases.case import Case, register_model
from torchparity.cases.inputs import InputGen
from torchparity.train_loop import TrainSpec


def register_lightning(
    name: str,
    module: Callable[[], torch.nn.Module],
    inputs: Callable[[InputGen, int], tuple],
    target: Callable[[InputGen, int], Any] | None = None,
    *,
    suites: Iterable[str] = (),
    batch: int = 1,
    description: str = "",
    **kwargs: Any,
) -> Case:
    """Register a LightningModule factory as a model case. ``target(gen,
    batch)`` gives each step's targets (default: class labels when the output
    is [batch, classes])."""
    return register_model(
        name,
        module,
        inputs,
        suites=suites,
        batch=batch,
        description=description or "LightningModule (training_step drives train cells)",
        train=TrainSpec(target=target, lightning=True),
        **kwargs,
    )
