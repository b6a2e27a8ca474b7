"""Cases for the expectations tests: suite ``expect_demo`` with one op that
passes and one that fails at fp32 (eager disagrees with the fp64 reference),
and a multi-sample case whose second sample fails. The expectations file is
``$TORCHPARITY_TEST_EXPECTATIONS``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from torchparity import register_case, register_op
from torchparity.cases.case import Case
from torchparity.cases.samples import Sample
from torchparity.verdicts import expectations

SUITE = "expect_demo"
PATH = Path(os.environ["TORCHPARITY_TEST_EXPECTATIONS"])
expectations.register_file(SUITE, PATH)


def good(x):
    return x * 2


def off_by_one_in_fp32(x):
    # Wrong only in fp32: the fp64 reference and the fp32 cell disagree.
    return x + 1 if x.dtype == torch.float32 else x


for name, fn in (("good", good), ("bad", off_by_one_in_fp32)):
    register_op(name, fn, samples=lambda gen, batch: (gen.normal(4),), suites=[SUITE])


class TwoSamples:
    """Sample 0 passes; sample 1 (three elements) is wrong in fp32."""

    def samples(self, dtype: torch.dtype, device: str, suite: str) -> list[Sample]:
        a = torch.linspace(-1, 1, 4, dtype=dtype)
        b = torch.linspace(-2, 2, 3, dtype=dtype)
        return [Sample(0, "linspace(4)", (a,)), Sample(1, "linspace(3)", (b,))]

    def module(self, samples: Sequence[Sample]) -> torch.nn.Module:
        class Batch(torch.nn.Module):
            def forward(self, *xs):
                return tuple(
                    x + 1 if x.numel() == 3 and x.dtype == torch.float32 else x * 2 for x in xs
                )

        return Batch()


register_case(
    Case(
        "two_samples",
        "op",
        make_module=torch.nn.Identity,
        make_inputs=lambda gen, batch: (),
        reinit_weights=False,
        extra={"samples": TwoSamples()},
    ),
    [SUITE],
)
