"""Cases and suites: what to measure, described once, and the registry that holds them.

Built-in suites and user code register through the same functions
(:func:`register_model`, :func:`register_case`); the engine finds built-in
suites through the ``torchparity.plugins`` entry point, and user code through
``--case-file PATH`` or ``--plugin MODULE``. Ops register with
:func:`register_op`: the callable is wrapped in a module (:func:`op_module`)
so ops run through the same matrix, backends and reports as models.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from torchparity.cases.generation import Generation
from torchparity.cases.inputs import InputGen
from torchparity.cases.shapes import DynamicDim, check_dims
from torchparity.cases.tolerance import Tolerance

ENTRY_POINT_GROUP = "torchparity.plugins"


@dataclass(frozen=True)
class KnownFailure:
    """A known divergence or breakage: cells matching the globs turn a fail or
    error into ``xfail`` with this reason and link."""

    reason: str
    backend: str = "*"
    device: str = "*"
    precision: str = "*"
    link: str = ""
    status: str = ""  # the expected status (fail, error, ...) when an expectations file says
    blame: str = ""  # torchparity.verdicts.blame category, when known

    def matches(self, backend: str, device: str, precision: str) -> bool:
        return (
            fnmatch.fnmatchcase(backend, self.backend)
            and fnmatch.fnmatchcase(device, self.device)
            and fnmatch.fnmatchcase(precision, self.precision)
        )

    def describe(self) -> str:
        return f"known: {self.reason}" + (f" ({self.link})" if self.link else "")


@dataclass
class Case:
    """One thing to measure.

    ``make_module()`` builds the module (an op case wraps its callable in a
    module); ``make_inputs(gen, batch)`` returns a tuple of tensors drawn from
    the deterministic generator ``gen``: floats as float64, ids as int64.
    """

    name: str
    kind: str  # "model" or "op"
    make_module: Callable[[], torch.nn.Module]
    make_inputs: Callable[[InputGen, int], tuple]
    batch: int = 1
    tolerances: Mapping[torch.dtype, Tolerance] = field(default_factory=dict)
    known_failures: tuple[KnownFailure, ...] = ()
    tags: frozenset[str] = frozenset()
    reinit_weights: bool = True
    description: str = ""
    source: str = ""  # where it was registered (module or file), for messages
    extra: dict[str, Any] = field(default_factory=dict)  # kind-specific data (e.g. op strategies)
    # An output with no tensor elements is an error (nothing would be compared)
    # unless the case says that empty output is what it expects.
    empty_output_ok: bool = False
    # A model whose output is all zeros or ignores its inputs is an error (any
    # backend would match it) unless the case says the constant is what it computes.
    constant_output_ok: bool = False
    # The input dims that may change size (shape mode, cases/shapes.py); none: static.
    dynamic: tuple[DynamicDim, ...] = ()

    def known_failure(self, backend: str, device: str, precision: str) -> KnownFailure | None:
        for mark in self.known_failures:
            if mark.matches(backend, device, precision):
                return mark
        return None


CASES: dict[str, Case] = {}
SUITES: dict[str, list[str]] = {}


class RegistryError(ValueError):
    """A registration or lookup that cannot be honoured (duplicate, unknown name)."""


def register_case(case: Case, suites: Iterable[str] = ()) -> Case:
    """Register ``case`` and add it to each named suite (created on first use)."""
    if not isinstance(case.name, str) or not case.name.strip():
        # A name becomes a row's column, a file stem and a CLI argument: text only.
        shown = repr(case.name)[:60]
        raise RegistryError(f"a case name must be non-empty text, not {shown}")
    existing = CASES.get(case.name)
    if existing is not None:
        if existing.source == case.source:
            raise RegistryError(
                f"case {case.name!r} is registered twice in the same file "
                f"{case.source or '(unknown)'}"
            )
        raise RegistryError(
            f"case {case.name!r} is already registered by "
            f"{existing.source or 'another module'}; {case.source or 'another module'} "
            "registers it again"
        )
    CASES[case.name] = case
    for suite in suites:
        members = SUITES.setdefault(suite, [])
        if case.name not in members:
            members.append(case.name)
    return case


def register_model(
    name: str,
    module: Callable[[], torch.nn.Module],
    inputs: Callable[[InputGen, int], tuple],
    *,
    suites: Iterable[str] = (),
    batch: int = 1,
    tolerances: Mapping[torch.dtype, Tolerance] | None = None,
    known_failures: Iterable[KnownFailure] = (),
    tags: Iterable[str] = (),
    reinit_weights: bool = True,
    description: str = "",
    empty_output_ok: bool = False,
    constant_output_ok: bool = False,
    train: Any = None,
    dynamic: Iterable[DynamicDim] = (),
    generation: Generation | None = None,
) -> Case:
    """Register a model case: a module factory plus a deterministic input factory.
    ``empty_output_ok`` declares that an output without tensor elements is
    expected (otherwise such a cell is an ``error``: nothing was compared);
    ``constant_output_ok`` that an all-zero or input-independent output is
    (otherwise such a cell is an ``error``: any backend would match it).
    ``train`` (an engine/training.TrainSpec) declares the case's loss, targets
    or optimizer for train cells. ``dynamic`` declares the input dims that may
    change size (``DynamicDim``: batch, sequence, ...; shape mode, docs/shapes.md).
    ``generation`` (a ``Generation``) declares how the model generates text:
    its generate cells (``--mode generate``, docs/generation.md)."""
    case = Case(
        name=name,
        kind="model",
        make_module=module,
        make_inputs=inputs,
        batch=batch,
        tolerances=dict(tolerances or {}),
        known_failures=tuple(known_failures),
        tags=frozenset(tags),
        reinit_weights=reinit_weights,
        description=description,
        source=_caller_module(),
        empty_output_ok=empty_output_ok,
        constant_output_ok=constant_output_ok,
        extra={"train": train} if train is not None else {},
        dynamic=check_dims(list(dynamic)),
    )
    if generation is not None:
        if not isinstance(generation, Generation):
            raise RegistryError(f"{name}: generation= takes a torchparity.Generation")
        case.extra["generation"] = generation
    return register_case(case, suites)


# An op's fuzzing strategy: called with ``shapes`` (how many entries of each
# shape and dtype pool to use; small in the ci profile so a backend exports
# few signatures), it returns a hypothesis strategy of argument tuples. Kept
# as a factory so the catalog imports without hypothesis installed.
OpStrategy = Callable[[int], Any]


def op_module(
    fn: Callable[..., Any], arity: int | None = None, name: str = "op"
) -> torch.nn.Module:
    """A module whose ``forward(a0, ..., a{n-1})`` returns ``fn(a0, ...)``.

    The forward takes tensors only and calls ``fn`` through a closure, so the
    module traces, exports, and scripts whenever ``fn`` itself is scriptable
    (a ``def`` or a torch function; constant keyword arguments go inside it).
    """
    n = _arity(fn) if arity is None else arity
    forward = _FORWARDS[n](fn)
    cls = type(f"Op_{name}", (torch.nn.Module,), {"forward": forward, "__module__": __name__})
    return cls()


def _arity(fn: Callable[..., Any]) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: say arity=
        raise RegistryError(f"cannot read the signature of {fn!r}; pass arity=") from None
    return sum(
        1
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    )


# TorchScript needs a fixed, annotated signature: one forward per arity.
def _forward1(fn):
    def forward(self, a0: torch.Tensor):
        return fn(a0)

    return forward


def _forward2(fn):
    def forward(self, a0: torch.Tensor, a1: torch.Tensor):
        return fn(a0, a1)

    return forward


def _forward3(fn):
    def forward(self, a0: torch.Tensor, a1: torch.Tensor, a2: torch.Tensor):
        return fn(a0, a1, a2)

    return forward


def _forward4(fn):
    def forward(self, a0: torch.Tensor, a1: torch.Tensor, a2: torch.Tensor, a3: torch.Tensor):
        return fn(a0, a1, a2, a3)

    return forward


def _forward5(fn):
    def forward(
        self,
        a0: torch.Tensor,
        a1: torch.Tensor,
        a2: torch.Tensor,
        a3: torch.Tensor,
        a4: torch.Tensor,
    ):
        return fn(a0, a1, a2, a3, a4)

    return forward


_FORWARDS = {1: _forward1, 2: _forward2, 3: _forward3, 4: _forward4, 5: _forward5}


def exact_in_every_precision(inputs: tuple) -> tuple:
    """Float inputs rounded to values that fp16, bf16, fp32 and fp64 all hold
    exactly (bf16's grid, within fp16's normal range), so every precision cell
    computes on the very inputs the fp64 reference saw."""

    def snap(x: object) -> object:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            y = x.to(torch.bfloat16).to(torch.float64).clamp(-65280.0, 65280.0)
            return torch.where(y.abs() < 2.0**-14, y * 0.0, y)  # keeps -0.0 and NaN
        return x

    return tuple(snap(x) for x in inputs)


def register_op(
    name: str,
    fn: Callable[..., Any],
    samples: Callable[[InputGen, int], tuple],
    strategy: OpStrategy | None = None,
    *,
    arity: int | None = None,
    suites: Iterable[str] = (),
    dtypes: Iterable[str] = (),
    precisions: Iterable[str] | None = None,
    tolerances: Mapping[torch.dtype, Tolerance] | None = None,
    known_failures: Iterable[KnownFailure] = (),
    tags: Iterable[str] = (),
    description: str = "",
    dynamic: Iterable[DynamicDim] = (),
) -> Case:
    """Register an op case.

    ``samples(gen, batch)`` gives the fixed inputs of ``torchparity run``
    (floats are snapped with :func:`exact_in_every_precision`); ``strategy``
    (see ``OpStrategy``) the inputs of ``torchparity fuzz``. ``dtypes`` names
    the input dtypes the op accepts (documentation and listing);
    ``precisions`` limits the precision axis (e.g. ``["fp32"]`` for an op
    without float inputs): other precisions become ``skip`` rows; ``dynamic``
    the input dims that may change size (shape mode, docs/shapes.md).
    """
    n = _arity(fn) if arity is None else arity
    if n not in _FORWARDS:
        raise RegistryError(f"op {name!r}: arity {n} not supported (1..{max(_FORWARDS)})")
    case = Case(
        name=name,
        kind="op",
        make_module=lambda: op_module(fn, n, name),
        make_inputs=lambda gen, batch: exact_in_every_precision(tuple(samples(gen, batch))),
        tolerances=dict(tolerances or {}),
        known_failures=tuple(known_failures),
        tags=frozenset(tags),
        reinit_weights=False,
        description=description,
        source=_caller_module(),
        extra={
            "fn": fn,
            "arity": n,
            "strategy": strategy,
            "dtypes": tuple(dtypes),
            "precisions": tuple(precisions) if precisions is not None else None,
        },
        dynamic=check_dims(list(dynamic)),
    )
    return register_case(case, suites)


def precision_unsupported(case: Case, precision: str) -> str | None:
    """Why ``case`` does not run at ``precision`` (an op limited to some, or a
    case standing for a suite that cannot load here), or None."""
    if case.extra.get("unavailable"):
        return str(case.extra["unavailable"])
    allowed = case.extra.get("precisions")
    if allowed is not None and precision not in allowed:
        return f"{case.name} runs at {', '.join(allowed)} only (no float inputs or no {precision} kernel)"
    return None


def _caller_module() -> str:
    """Who registers: a module's name, or a case file's path (its module name is internal)."""
    frame = sys._getframe(2)
    name = str(frame.f_globals.get("__name__", ""))
    return str(frame.f_globals.get("__file__") or name) if name.startswith(_USER_PREFIX) else name


def suite_cases(suite: str) -> list[Case]:
    if suite not in SUITES:
        raise RegistryError(
            f"unknown suite {suite!r}; valid: {', '.join(sorted(SUITES)) or 'none'}"
        )
    return [CASES[name] for name in SUITES[suite]]


def select_cases(suite: str | None, patterns: Iterable[str] = ()) -> list[Case]:
    """Cases of ``suite`` (all cases when None) whose names match any glob of ``patterns``."""
    pool = suite_cases(suite) if suite else list(CASES.values())
    patterns = list(patterns)
    if not patterns:
        return pool
    chosen = [c for c in pool if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)]
    for p in patterns:
        if not any(fnmatch.fnmatchcase(c.name, p) for c in pool):
            where = f"suite {suite!r}" if suite else "the registry"
            raise RegistryError(
                f"no case matches {p!r} in {where}; valid: {', '.join(c.name for c in pool)}"
            )
    return chosen


# --- loading user and built-in code -------------------------------------------------

PluginSpec = tuple[str, str]  # ("module", "pkg.mod") or ("file", "/path/cases.py")
_LOADED: set[PluginSpec] = set()


# The built-in catalog's entry points (pyproject.toml). Read from a source tree
# that was never installed (PYTHONPATH=src), or installed before a suite was
# added, an entry point is missing, so these are loaded by name too, exactly as
# `--plugin MODULE` would load them.
BUILTIN_PLUGINS = (
    "torchparity.suites.models",
    "torchparity.suites.ops",
    "torchparity.suites.opinfo",
    "torchparity.suites.zoo",
)


def load_entry_point_plugins() -> None:
    """Import every module registered under the ``torchparity.plugins`` entry
    point, and each built-in suite the installed metadata does not name."""
    modules = [ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)]
    modules += [m for m in BUILTIN_PLUGINS if m not in modules]
    for module in modules:
        load_plugin(("module", module))


def load_plugin(spec: PluginSpec) -> None:
    """Import a plugin module or execute a case file, once per process."""
    if spec in _LOADED:
        return
    kind, target = spec
    if kind == "module":
        try:
            importlib.import_module(target)
        except ModuleNotFoundError as exc:
            if exc.name and target.startswith(exc.name):
                raise RegistryError(f"plugin module {target!r} not found") from None
            raise RegistryError(f"plugin module {target!r}: {type(exc).__name__}: {exc}") from None
        except RegistryError as exc:
            raise RegistryError(f"plugin module {target!r}: {exc}") from None
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code (sys.exit too)
            message = (str(exc).splitlines() or [""])[0][:300]
            raise RegistryError(
                f"plugin module {target!r}: {type(exc).__name__}: {message}"
            ) from None
    elif kind == "file":
        path = Path(target)
        if not path.is_file():
            raise RegistryError(f"case file {target!r} does not exist")
        spec = ("file", str(path.resolve()))
        if spec in _LOADED:
            return
        _exec_case_file(path)
    else:
        raise RegistryError(f"unknown plugin kind {kind!r}")
    _LOADED.add(spec)


_USER_PREFIX = "torchparity_user_"


def _exec_case_file(path: Path) -> None:
    """Execute a user's case file as a module; what goes wrong in it (a syntax
    error, an exception at import) is one ``RegistryError`` naming the file and line."""
    mod_name = f"{_USER_PREFIX}{hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]}"
    module_spec = importlib.util.spec_from_file_location(mod_name, path)
    if module_spec is None or module_spec.loader is None:
        raise RegistryError(f"case file {str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[mod_name] = module
    try:
        module_spec.loader.exec_module(module)
    except RegistryError as exc:
        sys.modules.pop(mod_name, None)
        raise RegistryError(f"case file {path}: {exc}") from None
    except SyntaxError as exc:
        sys.modules.pop(mod_name, None)
        raise RegistryError(
            f"case file {path}, line {exc.lineno}: SyntaxError: {exc.msg}"
        ) from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the user's code (sys.exit too)
        sys.modules.pop(mod_name, None)
        line = next(
            (
                f.lineno
                for f in reversed(traceback.extract_tb(exc.__traceback__))
                if Path(f.filename).resolve() == path.resolve()
            ),
            None,
        )
        where = f", line {line}" if line else ""
        message = (str(exc).splitlines() or [""])[0][:300]
        raise RegistryError(f"case file {path}{where}: {type(exc).__name__}: {message}") from None


def loaded_plugins() -> list[PluginSpec]:
    """The plugins and case files this process loaded (for processes it starts)."""
    return sorted(_LOADED)


def load_all(plugins: Iterable[PluginSpec]) -> None:
    """Built-in suites, then the user's plugins and case files, in order."""
    load_entry_point_plugins()
    for spec in plugins:
        load_plugin(spec)
