"""One OpInfo entry as a multi-sample case: its sample inputs for the cell's
dtype, each turned into a call (``calls.py``), batched into one module."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch

from torchparity.cases.inputs import seed_from
from torchparity.cases.samples import Sample, SamplesUnavailable
from torchparity.suites.opinfo import calls as calls_mod
from torchparity.suites.opinfo import guard

# Suites that cap the samples per cell (OpInfo's first N); ``opinfo`` runs every sample.
SAMPLE_CAPS = {"opinfo-ci": 4, "opinfo-sampled": 16}
FLOAT_DTYPES = {
    "fp64": torch.float64,
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}
# Ops with no float dtype run at fp32 with their widest integer (or bool) dtype,
# as the hand-written catalog's integer ops do.
INTEGER_ORDER = ("int64", "int32", "int16", "int8", "uint8", "bool")
# Random ops OpInfo does not flag as nondeterministic: their outputs are
# compared by shape and dtype only.
RANDOM = frozenset(
    {
        "bernoulli",
        "cauchy",
        "exponential",
        "geometric",
        "log_normal",
        "multinomial",
        "normal",
        "normal.in_place",
        "normal.number_mean",
        "uniform",
        "rand_like",
        "randn",
        "randn_like",
        "randint",
        "randint_like",
        "nn.functional.rrelu",
        "nn.functional.dropout",
        "nn.functional.dropout2d",
        "nn.functional.dropout3d",
        "nn.functional.alpha_dropout",
        "nn.functional.feature_alpha_dropout.with_train",
    }
)


@functools.lru_cache(maxsize=1)
def _entries() -> dict[str, Any]:
    return {guard.full_name(e): e for e in guard.op_db()}


def _entry(name: str) -> Any:
    """The OpInfo entry named ``name``; SamplesUnavailable when this torch has none."""
    entry = _entries().get(name)
    if entry is None:
        raise SamplesUnavailable(f"OpInfo {name!r} is not in torch {torch.__version__}'s op_db")
    return entry


@functools.lru_cache(maxsize=8)  # a worker runs a case's cells back to back
def _generate(name: str, dtype: torch.dtype, device: str, seed: int) -> list[Any]:
    entry = _entry(name)
    torch.manual_seed(seed)  # make_tensor draws from torch's generator: same samples every run
    samples = list(entry.sample_inputs(device, dtype, requires_grad=False))
    for s in samples:
        guard.check_sample(s)
    return samples


def sample_dtype(dtypes: Sequence[str], precision: str) -> torch.dtype | None:
    """The dtype a precision cell runs the op in, or None (skip)."""
    dtype = FLOAT_DTYPES.get(precision)
    if dtype is not None and str(dtype).removeprefix("torch.") in dtypes:
        return dtype
    floats = {str(d).removeprefix("torch.") for d in FLOAT_DTYPES.values()}
    if precision == "fp32" and not floats & set(dtypes):
        for name in INTEGER_ORDER:
            if name in dtypes:
                return getattr(torch, name)
    return None


class OpInfoSamples:
    """The :class:`torchparity.cell.multisample.SampleSource` of one OpInfo entry."""

    def __init__(self, name: str, dtypes: dict[str, list[str]], nondeterministic: bool) -> None:
        self.name = name
        self.dtypes = dtypes
        self.compare_values = not nondeterministic and name not in RANDOM
        self._calls: dict[int, calls_mod.Call] = {}

    def samples(self, dtype: torch.dtype, device: str, suite: str) -> list[Sample]:
        try:
            entry = _entry(self.name)
            precision = next((p for p, d in FLOAT_DTYPES.items() if d == dtype), "")
            chosen = sample_dtype(self.dtypes.get(device, []), precision)
            if chosen is None:
                raise SamplesUnavailable(f"OpInfo {self.name} has no {dtype} kernel on {device}")
            raw = _generate(self.name, chosen, device, seed_from(self.name, 0, "opinfo") % 2**31)
        except guard.OpInfoUnavailable as exc:
            raise SamplesUnavailable(str(exc)) from None
        cap = SAMPLE_CAPS.get(suite)
        callee, self.namespace = calls_mod.callee_for(entry.op)
        method = calls_mod.method_for(entry.op, getattr(entry, "method_variant", None))
        out = []
        for i, raw_sample in enumerate(raw[:cap] if cap else raw):
            try:
                call = calls_mod.sample_call(callee, raw_sample, method)
            except calls_mod.Unrepresentable as exc:
                out.append(
                    Sample(i, f"sample {i}", (), invalid=f"argument with no literal form: {exc}")
                )
                continue
            self._calls[i] = call
            inputs = tuple(t.detach().cpu() for t in call.tensors)
            out.append(Sample(i, call.label, inputs, compare_values=self.compare_values))
        return out

    def module(self, samples: Sequence[Sample]) -> torch.nn.Module:
        return calls_mod.batch_module(
            [self._calls[s.index] for s in samples], self.namespace, self.name
        )

    def call_text(self, sample: Sample) -> str:
        """The sample's call with tensors named t0, t1, ... (for reproducers)."""
        call = self._calls[sample.index]
        return call.expr.format(*(f"t{i}" for i in range(len(call.tensors))))
