"""OpInfo's sample inputs as fuzzing seeds for the catalog op of the same
name: the samples whose arguments are all tensors, as many as the catalog's
callable takes, and no keyword arguments."""

from __future__ import annotations

import functools
import json

import torch

from torchparity.cases.case import Case
from torchparity.cases.inputs import seed_from
from torchparity.suites.opinfo import guard, manifest
from torchparity.suites.opinfo.source import _generate, sample_dtype


@functools.lru_cache(maxsize=1)
def _dtypes() -> dict[str, list[str]]:
    try:
        data = manifest.load()
    except (guard.OpInfoUnavailable, OSError, json.JSONDecodeError):
        return {}
    return {e["name"]: e["dtypes"].get("cpu", []) for e in data["entries"]}


def opinfo_seeds(case: Case, dtype: torch.dtype) -> list[tuple]:
    """Seeds for a catalog op (``torchparity.cases.seeds`` source)."""
    if case.kind != "op" or case.name.startswith("opinfo.") or case.name not in _dtypes():
        return []
    precision = {
        torch.float64: "fp64",
        torch.float32: "fp32",
        torch.float16: "fp16",
        torch.bfloat16: "bf16",
    }.get(dtype, "fp32")
    chosen = sample_dtype(_dtypes()[case.name], precision) or sample_dtype(
        _dtypes()[case.name], "fp32"
    )
    if chosen is None or guard.cheap_check() is not None:
        return []
    arity = case.extra.get("arity")
    seeds = []
    for s in _generate(case.name, chosen, "cpu", seed_from(case.name, 0, "opinfo") % 2**31):
        args = [s.input, *s.args]
        if s.kwargs or len(args) != arity or not all(isinstance(a, torch.Tensor) for a in args):
            continue
        seeds.append(tuple(a.detach().clone() for a in args))
    return seeds
