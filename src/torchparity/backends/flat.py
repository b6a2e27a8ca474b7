"""Flat outputs for graph backends: TorchScript, ONNX and torch.export want
plain tensors out, while models return dicts, dataclasses and library objects.
The module is wrapped to return the flat tuple of its tensor leaves (in
:func:`torchparity.cases.outputs.flatten` order); the pipeline names them with
eager's leaf names, so no backend rebuilds eager's structure inside the timed
call."""

from __future__ import annotations

from typing import Any

import torch

from torchparity.cases.outputs import tensor_leaves


class FlatOutputs(torch.nn.Module):
    """``module`` whose forward returns the tuple of its output's tensor leaves."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.inner = module

    def forward(self, *inputs: Any) -> tuple[torch.Tensor, ...]:
        return tensor_leaves(self.inner(*inputs))
