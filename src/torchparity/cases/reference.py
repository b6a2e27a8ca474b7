"""The reference: the case in eager, fp64, on CPU, on the same inputs.

Computed once per cache key (cases/cache_keys.py: the case's code and
weights, the inputs, the library versions), kept in memory and in a sealed file under
the cache directory so other worker processes load it instead of recomputing
(a file without this user's seal is recomputed: src/torchparity/_core/cache.py).
The seal carries the module's behavioural fingerprint (a cheap fp64 probe,
``cache_keys.behaviour_probe``): a file made for a module that computed
something else is recomputed ("model changed"), and a module that does not
reproduce itself is flagged ``nondeterministic``.
The reference runs on its own copy of the inputs: a model that modifies its
inputs in place cannot change what later consumers see.
"""

from __future__ import annotations

import copy
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import torch

from torchparity._core import cache
from torchparity._core.files import atomic_write_bytes
from torchparity._core.status import Status
from torchparity.cases.cache_keys import behaviour_probe, cell_key
from torchparity.cases.call_args import as_positional, keyword_call, layout_of
from torchparity.cases.case import Case
from torchparity.cases.inputs import InputGen, init_weights, seed_from, tensor_digest
from torchparity.cases.outputs import Flattened, flatten


@dataclass
class Reference:
    names: list[str]
    outputs: list[torch.Tensor]
    input_digest: str
    dropped: list[str] = field(default_factory=list)  # non-tensor output leaves
    numbers: list[str] = field(default_factory=list)  # leaves that were Python numbers
    fingerprint: str = ""  # the module's behavioural fingerprint (cache_keys.Probe)
    nondeterministic: str = ""  # why two fp64 calls differ ("" when they agree)
    cache: str = ""  # hit / miss / rebuilt (why) / off: the row's reference_cache


def build_module(case: Case, seed: int) -> torch.nn.Module:
    """The case's module in eval mode, with the same weights on every platform."""
    torch.manual_seed(seed_from(case.name, seed, "module") % 2**63)
    module = case.make_module()
    if case.reinit_weights:
        init_weights(module, case.name, seed)
    layout = layout_of(case.make_inputs(InputGen(case.name, seed, "inputs"), case.batch))
    if layout is not None:  # keyword inputs: every backend takes the flat positional form
        module = keyword_call(module, layout)
    return module.eval()


def behaviour_now(case: Case, seed: int) -> str | None:
    """The behavioural fingerprint ``case``'s module has now (what a row's
    ``behaviour_fingerprint`` records), or None when it has none to compare: the
    module does not build, or does not reproduce itself (a new value per probe)."""
    try:
        probe = behaviour_probe(case, build_module(case, seed))
    except Exception:  # noqa: BLE001 - the cell's own stages report the failure
        return None
    return (
        None
        if probe.nondeterministic or probe.fingerprint.startswith("unprobed-")
        else (probe.fingerprint)
    )


def build_inputs(case: Case, seed: int, batch: int | None = None, draw: str = "") -> tuple:
    """The case's inputs as float64 / int64 tensors on CPU, identical everywhere
    (``draw``: another, independent draw, e.g. to test input dependence)."""
    key = (case.name, seed, "inputs", draw) if draw else (case.name, seed, "inputs")
    return as_positional(case.make_inputs(InputGen(*key), batch or case.batch))


def clone_inputs(inputs: tuple) -> tuple:
    """A private copy of ``inputs`` for one consumer (reference, eager, a backend)."""
    return tuple(
        x.detach().clone() if isinstance(x, torch.Tensor) else copy.deepcopy(x) for x in inputs
    )


def input_digest(inputs: tuple) -> str:
    """The inputs' digest: their tensors' bytes, and the values of the constant
    inputs beside them (a list of ints, a flag) when there are any."""
    digest = tensor_digest([x for x in inputs if isinstance(x, torch.Tensor)])
    constants = [
        f"{i}={_constant_text(x)}" for i, x in enumerate(inputs) if not isinstance(x, torch.Tensor)
    ]
    if not constants:
        return digest  # the digest tensors alone always had: caches stay valid
    text = "|".join([digest, *constants])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _constant_text(x: object) -> str:
    """A constant input's value as text, the same in every process: plain
    values and lists or tuples of them; another object by its type alone
    (its repr may hold a memory address)."""
    if isinstance(x, (list, tuple)):
        return type(x).__name__ + "(" + ",".join(_constant_text(v) for v in x) + ")"
    if x is None or isinstance(x, (bool, int, float, str)):
        return repr(x)
    return type(x).__qualname__


def reference_key(case: Case, case_print: str, digest: str, seed: int) -> str:
    return cell_key(case_print, digest, "fp64", "cpu", "reference", seed=seed)


_MEMORY: dict[tuple[str, str], Reference] = {}


def compute_reference(module: torch.nn.Module, inputs: tuple, digest: str) -> Reference:
    ref_module = copy.deepcopy(module).to(torch.float64)
    ref_inputs = tuple(
        x.to(torch.float64) if isinstance(x, torch.Tensor) and x.is_floating_point() else x
        for x in clone_inputs(inputs)
    )
    with torch.no_grad():
        out = flatten(ref_module(*ref_inputs))
    return Reference(
        out.names, [t.detach().clone() for t in out.tensors], digest, out.dropped, out.numbers
    )


def as_flattened(ref: Reference) -> Flattened:
    """The reference's output, as the one flattening gave it."""
    return Flattened(list(ref.names), list(ref.outputs), list(ref.dropped), list(ref.numbers))


def _load(path: Path, fingerprint: str) -> Reference | str:
    """The sealed reference file at ``path``, or why not (unsealed, made for a
    model that computed something else, changed, torn): a file this user's runs
    did not write for this very model is never believed."""
    data, why = cache.verified_bytes(path, fingerprint)
    if data is None:
        cache.discard(path)
        return why
    try:
        data = torch.load(io.BytesIO(data), weights_only=True)  # tensors and plain containers only
        if "numbers" not in data:
            return "an entry of an older torchparity (no Python-number leaves recorded)"
        return Reference(
            list(data["names"]),
            list(data["outputs"]),
            data["input_digest"],
            list(data.get("dropped", [])),
            list(data["numbers"]),
        )
    except Exception as exc:  # noqa: BLE001 - a corrupt file is recomputed, never trusted
        return f"{type(exc).__name__} loading the cached entry"


def _save(ref: Reference, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(
        {
            "names": ref.names,
            "outputs": ref.outputs,
            "input_digest": ref.input_digest,
            "dropped": ref.dropped,
            "numbers": ref.numbers,
        },
        buffer,
    )
    data = buffer.getvalue()
    atomic_write_bytes(path, data)
    cache.seal(path, data, ref.fingerprint)


NONDETERMINISM_HELP = (
    "make the case deterministic: build it in eval() mode, draw random values "
    "from a seeded torch.Generator made in the module (not the global RNG), and "
    'no dropout or sampling in forward (docs/security.md, "A model that does not reproduce itself")'
)


def nondeterminism_fields(ref: Reference) -> dict[str, object]:
    """The row's verdict for a module that does not reproduce itself at fp64
    (empty when it does): an ``error`` blamed on the case, since no backend can be
    judged against a reference that changes from call to call."""
    if not ref.nondeterministic:
        return {}
    return {
        "status": Status.ERROR.value,
        "reason": (
            "non-deterministic model: two fp64 eager calls on the same inputs "
            f"differ ({ref.nondeterministic}); {NONDETERMINISM_HELP}"
        ),
        "error_stage": "reference",
        "error_type": "NonDeterministic",
        "nondeterministic": True,
    }


def get_reference(
    case: Case,
    module: torch.nn.Module,
    inputs: tuple,
    cache_dir: Path | None,
    case_print: str,
    seed: int = 0,
) -> Reference:
    """The reference for ``case`` on ``inputs``, from memory, the file cache, or
    computed; ``cache`` says which, ``nondeterministic`` whether the module
    reproduces itself (then nothing is cached or served for it)."""
    digest = input_digest(inputs)
    key = reference_key(case, case_print, digest, seed)
    probe = behaviour_probe(case, module)
    if (key, probe.fingerprint) in _MEMORY:
        return _MEMORY[(key, probe.fingerprint)]
    path = cache_dir / "reference" / f"{key}.pt" if cache_dir else None
    state = "off" if path is None else "miss"
    ref: Reference | str | None = None
    if path is not None and (path.exists() or path.is_symlink()):
        ref = _load(path, probe.fingerprint)
        state = "hit" if isinstance(ref, Reference) else f"rebuilt ({ref})"
    if not isinstance(ref, Reference):
        ref = compute_reference(module, inputs, digest)
        ref.fingerprint = probe.fingerprint
        if path is not None and not probe.nondeterministic:
            _save(ref, path)
    ref.fingerprint, ref.nondeterministic, ref.cache = (
        probe.fingerprint,
        probe.nondeterministic,
        state,
    )
    _MEMORY[(key, probe.fingerprint)] = ref
    return ref
