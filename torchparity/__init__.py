"""torchparity: the importable face of the distribution. A thin facade: the
engine is ``harness``; this re-exports its public API (resolved on first use)
and ``torchparity.testing`` holds ``assert_parity``."""

from __future__ import annotations

from typing import Any

import harness

__all__ = list(harness.__all__)


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(harness, name)
    raise AttributeError(f"module 'torchparity' has no attribute {name!r}")
