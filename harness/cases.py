"""Cases and suites: what to measure, described once, and the registry that holds them.

Built-in suites and user code register through the same functions
(:func:`register_model`, :func:`register_case`); the engine finds built-in
suites through the ``torchparity.plugins`` entry point, and user code through
``--case-file PATH`` or ``--plugin MODULE``.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.inputs import InputGen
from harness.precision import Tolerance

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
    existing = CASES.get(case.name)
    if existing is not None and existing.source != case.source:
        raise RegistryError(
            f"case {case.name!r} is already registered by {existing.source or 'another module'}"
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
) -> Case:
    """Register a model case: a module factory plus a deterministic input factory."""
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
    )
    return register_case(case, suites)


def _caller_module() -> str:
    frame = sys._getframe(2)
    return str(frame.f_globals.get("__name__", ""))


def suite_cases(suite: str) -> list[Case]:
    if suite not in SUITES:
        raise RegistryError(f"unknown suite {suite!r}; valid: {', '.join(sorted(SUITES)) or 'none'}")
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


def load_entry_point_plugins() -> None:
    """Import every module registered under the ``torchparity.plugins`` entry point."""
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        load_plugin(("module", ep.value))


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
            raise
    elif kind == "file":
        path = Path(target)
        if not path.is_file():
            raise RegistryError(f"case file {target!r} does not exist")
        mod_name = f"torchparity_user_{abs(hash(str(path.resolve())))}"
        module_spec = importlib.util.spec_from_file_location(mod_name, path)
        if module_spec is None or module_spec.loader is None:
            raise RegistryError(f"case file {target!r} is not a Python file")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        module_spec.loader.exec_module(module)
    else:
        raise RegistryError(f"unknown plugin kind {kind!r}")
    _LOADED.add(spec)


def load_all(plugins: Iterable[PluginSpec]) -> None:
    """Built-in suites, then the user's plugins and case files, in order."""
    load_entry_point_plugins()
    for spec in plugins:
        load_plugin(spec)
