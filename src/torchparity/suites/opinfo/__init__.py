"""PyTorch's OpInfo database as a suite: every entry usable on the device is
an op case whose cells run all its sample inputs (docs/opinfo.md).

Suites: ``opinfo`` (every entry, every sample: nightly, sharded),
``opinfo-sampled`` (every entry, at most 16 samples per cell: one machine)
and ``opinfo-ci`` (the ci selection: a fixed quarter of the entries, at most
4 samples per cell). Without the ``opinfo``
extra (expecttest) or with a torch whose private API changed, the suite holds
one case, ``opinfo.unavailable``, whose cells are skip rows with the reason.
"""

from __future__ import annotations

import torch

from torchparity.cases.case import Case, register_case
from torchparity.cases.seeds import register_seed_source
from torchparity.suites.opinfo import expectations_file, guard, manifest
from torchparity.suites.opinfo.seeds import opinfo_seeds
from torchparity.suites.opinfo.source import OpInfoSamples, sample_dtype

SUITE, SAMPLED_SUITE, CI_SUITE = "opinfo", "opinfo-sampled", "opinfo-ci"
PRECISIONS = ("fp64", "fp32", "fp16", "bf16")


def _not_a_module() -> torch.nn.Module:
    raise RuntimeError("an OpInfo case runs through its samples (torchparity.cell.multisample)")


def _register(entry: dict, ci: bool) -> None:
    name = f"opinfo.{entry['name']}"
    cpu = entry["dtypes"].get("cpu", [])
    precisions = tuple(p for p in PRECISIONS if sample_dtype(cpu, p) is not None)
    extra_unavailable = (
        {}
        if precisions
        else {
            "unavailable": f"OpInfo {entry['name']} has no float or integer dtype this suite runs on "
            f"cpu (it has: {', '.join(cpu) or 'none'})"
        }
    )
    case = Case(
        name=name,
        kind="op",
        make_module=_not_a_module,
        make_inputs=lambda gen, batch: (),
        tags=frozenset({"opinfo"}),
        reinit_weights=False,
        description=f"OpInfo {entry['name']} ({', '.join(precisions) or 'no float dtype'})",
        extra={
            "samples": OpInfoSamples(entry["name"], entry["dtypes"], entry["nondeterministic"]),
            "precisions": precisions,
            "opinfo": entry["name"],
            **extra_unavailable,
        },
    )
    register_case(case, [SUITE, SAMPLED_SUITE, CI_SUITE] if ci else [SUITE, SAMPLED_SUITE])


def _register_unavailable(reason: str) -> None:
    case = Case(
        name="opinfo.unavailable",
        kind="op",
        make_module=_not_a_module,
        make_inputs=lambda gen, batch: (),
        reinit_weights=False,
        description=f"OpInfo suite unavailable: {reason}",
        extra={"unavailable": reason},
    )
    register_case(case, [SUITE, SAMPLED_SUITE, CI_SUITE])


def _load() -> None:
    expectations_file.register()
    reason = guard.cheap_check()
    data = None
    if reason is None:
        try:
            data = manifest.load()
        except guard.OpInfoUnavailable as exc:
            reason = str(exc)
    if data is None:
        _register_unavailable(reason or "no manifest")
        return
    for entry in data["entries"]:
        _register(entry, expectations_file.in_ci_selection(entry["name"]))


_load()
register_seed_source(opinfo_seeds)  # OpInfo samples seed `torchparity fuzz` for catalog ops
