"""A tolerance: how close a backend's output must be to the reference. Cases
carry overrides; precisions carry the defaults (axes/precision.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """Elementwise closeness: ``|actual - expected| <= atol + rtol * |expected|``.

    ``rel_l2`` overrides the bound of the model policy (relative L2 error of a
    leaf); None means the dtype's default in ``MODEL_REL_L2``.
    """

    atol: float
    rtol: float
    rel_l2: float | None = None


__all__ = ["Tolerance"]
