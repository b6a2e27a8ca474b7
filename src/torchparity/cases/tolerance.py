"""A tolerance: how close a backend's output must be to the reference. Cases
carry overrides; precisions carry the defaults (axes/precision.py)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tolerance:
    """Elementwise closeness: ``|actual - expected| <= atol + rtol * |expected|``.

    ``rel_l2`` overrides the bound of the model policy (relative L2 error of a
    leaf); None means the dtype's default in ``MODEL_REL_L2``.

    The int8 precisions read the other fields (a case sets them under the key
    ``torch.int8``; None keeps the default of ``INT8_TOLERANCES``, axes/precision.py):
    fidelity to the quantized reference in output quantization steps
    (``quant_max_steps`` at any element, ``quant_mean_steps`` on average), and
    agreement with fp32 eager (``min_cosine``, ``min_sqnr_db``; ``min_top1`` /
    ``min_top5`` for classifier-shaped outputs: the share of rows whose fp32
    top-1 class is int8's top-1, or among its top 5; ``min_exact`` for integer
    outputs such as an argmax: the share of elements equal to fp32 eager's).
    """

    atol: float = 0.0
    rtol: float = 0.0
    rel_l2: float | None = None
    quant_max_steps: float | None = None
    quant_mean_steps: float | None = None
    min_cosine: float | None = None
    min_sqnr_db: float | None = None
    min_top1: float | None = None
    min_top5: float | None = None
    min_exact: float | None = None


__all__ = ["Tolerance"]
