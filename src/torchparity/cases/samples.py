"""Multi-sample cases (the OpInfo suites): a case whose ``extra["samples"]`` is a
source of many small sample inputs, run together in one cell (cell/multisample.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch


class SamplesUnavailable(Exception):
    """The source cannot give samples here (a guarded private API changed,
    the dtype is unsupported): the cell is a ``skip`` row with this reason."""


@dataclass
class Sample:
    """One sample input: its tensors (at the cell's dtype, on CPU) and a label."""

    index: int
    label: str
    inputs: tuple[torch.Tensor, ...]
    compare_values: bool = True  # False: random/uninitialised outputs, shapes and dtypes only
    invalid: str = ""  # why the sample cannot run here (e.g. an argument with no literal form)


class SampleSource(Protocol):
    """What a multi-sample case provides (``Case.extra["samples"]``)."""

    def samples(self, dtype: torch.dtype, device: str, suite: str) -> list[Sample]:
        """The samples for ``dtype`` (the suite may cap their number)."""
        ...

    def module(self, samples: Sequence[Sample]) -> torch.nn.Module:
        """A module whose forward takes the samples' tensors in order and
        returns a tuple with one output per sample."""
        ...
