"""The reference: the case in eager, fp64, on CPU, on the same inputs.

Computed once per case and input digest, kept in memory and in a file under
the run's cache so other worker processes load it instead of recomputing.
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from harness.engine.cases import Case
from harness.engine.inputs import InputGen, init_weights, seed_from, tensor_digest
from harness.engine.outputs import flatten_outputs


@dataclass
class Reference:
    names: list[str]
    outputs: list[torch.Tensor]
    input_digest: str


def build_module(case: Case, seed: int) -> torch.nn.Module:
    """The case's module in eval mode, with the same weights on every platform."""
    torch.manual_seed(seed_from(case.name, seed, "module") % 2**63)
    module = case.make_module()
    if case.reinit_weights:
        init_weights(module, case.name, seed)
    return module.eval()


def build_inputs(case: Case, seed: int, batch: int | None = None) -> tuple:
    """The case's inputs as float64 / int64 tensors on CPU, identical everywhere."""
    inputs = case.make_inputs(InputGen(case.name, seed, "inputs"), batch or case.batch)
    return inputs if isinstance(inputs, tuple) else tuple(inputs)


def _as_reference_dtype(x: object) -> object:
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.to(torch.float64)
    return x


def input_digest(inputs: tuple) -> str:
    return tensor_digest([x for x in inputs if isinstance(x, torch.Tensor)])


_MEMORY: dict[str, Reference] = {}


def compute_reference(module: torch.nn.Module, inputs: tuple, input_digest: str) -> Reference:
    ref_module = copy.deepcopy(module).to(torch.float64)
    ref_inputs = tuple(_as_reference_dtype(x) for x in inputs)
    with torch.inference_mode():
        out = ref_module(*ref_inputs)
    names, leaves = flatten_outputs(out)
    return Reference(names, [t.detach().clone() for t in leaves], input_digest)


def get_reference(
    case: Case, module: torch.nn.Module, inputs: tuple, cache_dir: Path | None
) -> Reference:
    """The reference for ``case`` on ``inputs``, from memory, the file cache, or computed."""
    digest = input_digest(inputs)
    # The readable part alone collides ("a/b" vs "a_b"; "MLP" vs "mlp" on the
    # case-insensitive file systems of macOS and Windows): a hash of the exact name keeps keys apart.
    name_hash = hashlib.sha256(case.name.encode("utf-8")).hexdigest()[:8]
    key = f"{re.sub(r'[^A-Za-z0-9_.-]', '_', case.name)}-{name_hash}-{digest}"
    if key in _MEMORY:
        return _MEMORY[key]
    path = cache_dir / "reference" / f"{key}.pt" if cache_dir else None
    ref = None
    if path is not None and path.is_file():
        try:
            data = torch.load(path, weights_only=True)
            ref = Reference(list(data["names"]), list(data["outputs"]), data["input_digest"])
        except Exception:  # a torn or corrupt file is recomputed, never trusted
            ref = None
    if ref is None:
        ref = compute_reference(module, inputs, digest)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(
                {"names": ref.names, "outputs": ref.outputs, "input_digest": ref.input_digest}, tmp
            )
            tmp.replace(path)  # atomic: a reader never sees half a file
    _MEMORY[key] = ref
    return ref
