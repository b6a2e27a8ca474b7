"""The guarded private API: ``torch.testing._internal``'s OpInfo database.

It is private, so it can change between torch releases: the import and every
attribute this suite reads are checked here, and any change becomes an
:class:`OpInfoUnavailable` with a reason (a ``skip`` row), never a crash.
``TORCHPARITY_OPINFO_MODULE`` names another module holding ``op_db`` (tests
use it to exercise the guard with a stand-in that lacks what the suite needs).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from typing import Any

import torch

OPINFO_MODULE = "torch.testing._internal.common_methods_invocations"
MODULE_ENV = "TORCHPARITY_OPINFO_MODULE"
# torch releases whose op_db this suite was checked against (manifest, expectations).
TESTED_TORCH = ("2.13",)
OPINFO_ATTRIBUTES = (
    "name",
    "variant_test_name",
    "op",
    "supported_dtypes",
    "sample_inputs",
    "has_nondeterministic_output",
)
SAMPLE_ATTRIBUTES = ("input", "args", "kwargs")
INSTALL_HINT = "pip install 'torchparity[opinfo]' (OpInfo's import needs expecttest)"


class OpInfoUnavailable(Exception):
    """The OpInfo database cannot be used with this torch: the reason says why."""


def module_name() -> str:
    return os.environ.get(MODULE_ENV) or OPINFO_MODULE


def torch_release() -> str:
    """``2.13.0`` for ``2.13.0+cpu``."""
    return torch.__version__.split("+")[0]


def tested() -> bool:
    return any(torch_release().startswith(v + ".") for v in TESTED_TORCH)


def cheap_check() -> str | None:
    """Why the suite cannot load, from what is installed (no import of op_db): or None."""
    if module_name() == OPINFO_MODULE and importlib.util.find_spec("expecttest") is None:
        return f"expecttest is not installed; {INSTALL_HINT}"
    try:
        found = importlib.util.find_spec(module_name()) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return (
            f"module {module_name()} not found in torch {torch.__version__} (private API changed?)"
        )
    return None


@functools.lru_cache(maxsize=1)
def op_db() -> tuple[Any, ...]:
    """The OpInfo entries, checked: raises OpInfoUnavailable with the reason."""
    where = f"torch {torch.__version__}" + (
        "" if tested() else f" (suite tested on {', '.join(TESTED_TORCH)})"
    )
    try:
        module = importlib.import_module(module_name())
    except Exception as exc:  # noqa: BLE001 - ImportError, or the private module failing at import
        raise OpInfoUnavailable(
            f"cannot import {module_name()} in {where}: {type(exc).__name__}: {exc}"
        ) from None
    entries = getattr(module, "op_db", None)
    if not isinstance(entries, (list, tuple)) or not entries:
        raise OpInfoUnavailable(f"{module_name()}.op_db is missing or empty in {where}")
    missing = sorted({a for e in entries for a in OPINFO_ATTRIBUTES if not hasattr(e, a)})
    if missing:
        raise OpInfoUnavailable(
            f"OpInfo entries lack {', '.join(missing)} in {where} (private API changed)"
        )
    return tuple(entries)


def check_sample(sample: Any) -> None:
    missing = [a for a in SAMPLE_ATTRIBUTES if not hasattr(sample, a)]
    if missing:
        raise OpInfoUnavailable(
            f"SampleInput lacks {', '.join(missing)} in torch "
            f"{torch.__version__} (private API changed)"
        )


def full_name(entry: Any) -> str:
    """``div.floor_rounding`` for OpInfo ``div`` with variant ``floor_rounding``."""
    return entry.name + (f".{entry.variant_test_name}" if entry.variant_test_name else "")
