"""Stored outputs: enough of each cell's output leaves, kept in the run
directory, to measure how far two machines' outputs are apart after the fact.

A leaf of at most ``FULL_LIMIT`` elements is stored whole; a larger one as a
fixed sample of positions (evenly spaced over the flat tensor, so it depends
only on the element count and is the same on every machine) plus summary
statistics of the whole tensor. Values are stored as float64 (integers and
bools too: every stored dtype's values are exact in float64 except int64
beyond 2**53, which outputs do not reach in practice). One ``.npz`` per cell:
numpy's format is portable across OSes and loads without pickle.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchparity._core.files import atomic_write_bytes

FULL_LIMIT = 4096  # elements: store the whole leaf up to this size
SAMPLE_SIZE = 4096  # positions sampled from a larger leaf


def sample_positions(numel: int) -> np.ndarray:
    """The flat positions stored for a leaf of ``numel`` elements (all when small)."""
    if numel <= FULL_LIMIT:
        return np.arange(numel, dtype=np.int64)
    return np.unique(np.linspace(0, numel - 1, SAMPLE_SIZE).round().astype(np.int64))


def _as_float64(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.is_complex():
        t = torch.view_as_real(t)
    return t.to(torch.float64).contiguous().reshape(-1).numpy()


def _stats(flat: np.ndarray) -> dict[str, Any]:
    finite = flat[np.isfinite(flat)]
    return {
        "nan": int(np.isnan(flat).sum()),
        "inf": int(np.isinf(flat).sum()),
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
        "mean": float(finite.mean()) if finite.size else None,
        "std": float(finite.std()) if finite.size else None,
    }


def save(path: Path, cell_id: str, names: list[str], leaves: list[torch.Tensor]) -> Path:
    """Write the cell's leaves to ``path`` (an .npz); a uniquely named temp file
    and an atomic rename, so a killed worker never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    meta: list[dict[str, Any]] = []
    for i, (name, leaf) in enumerate(zip(names, leaves, strict=True)):
        flat = _as_float64(leaf)
        positions = sample_positions(flat.size)
        arrays[f"values_{i}"] = flat[positions]
        arrays[f"positions_{i}"] = positions
        meta.append(
            {
                "name": name,
                "dtype": str(leaf.dtype),
                "shape": list(leaf.shape),
                "numel": int(flat.size),
                "whole": bool(flat.size <= FULL_LIMIT),
                **_stats(flat),
            }
        )
    arrays["meta"] = np.array(json.dumps({"cell_id": cell_id, "leaves": meta}))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **arrays)  # plain arrays: no pickle
    return atomic_write_bytes(path, buffer.getvalue())


@dataclass
class StoredLeaf:
    """One stored leaf: metadata, and the values at ``positions`` of the flat tensor."""

    name: str
    dtype: str
    shape: list[int]
    whole: bool
    positions: np.ndarray
    values: np.ndarray
    stats: dict[str, Any]


def load(path: Path) -> list[StoredLeaf]:
    """The leaves stored in ``path`` (written by ``save``)."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        leaves = []
        for i, m in enumerate(meta["leaves"]):
            stats = {k: m[k] for k in ("nan", "inf", "min", "max", "mean", "std")}
            leaves.append(
                StoredLeaf(
                    m["name"],
                    m["dtype"],
                    m["shape"],
                    m["whole"],
                    data[f"positions_{i}"],
                    data[f"values_{i}"],
                    stats,
                )
            )
    return leaves


@dataclass(frozen=True)
class OutputDifference:
    """How far two stored outputs are apart. ``max_abs_diff`` is over the stored
    positions (every element when ``sampled`` is False); ``comparable`` is False
    when the leaves differ in names, shapes or count, with the reason in ``note``."""

    max_abs_diff: float
    max_rel_diff: float
    leaf: str
    sampled: bool
    comparable: bool = True
    note: str = ""


def difference(a: list[StoredLeaf], b: list[StoredLeaf]) -> OutputDifference:
    """The largest elementwise difference between two stored outputs of one cell.
    NaN in one and not the other, or infinities that differ, count as infinite."""
    if [x.shape for x in a] != [y.shape for y in b] or len(a) != len(b):
        return OutputDifference(math.inf, math.inf, "", False, False, "output shapes differ")
    worst = OutputDifference(0.0, 0.0, a[0].name if a else "", False)
    sampled = any(not x.whole for x in a)
    for x, y in zip(a, b, strict=True):
        if not np.array_equal(x.positions, y.positions):
            return OutputDifference(
                math.inf, math.inf, x.name, sampled, False, "sample positions differ"
            )
        u, v = x.values, y.values
        same = (u == v) | (np.isnan(u) & np.isnan(v))
        with np.errstate(invalid="ignore", over="ignore"):
            diff = np.where(same, 0.0, np.abs(u - v))
            diff = np.where(np.isnan(diff), np.inf, diff)
            scale = np.maximum(np.abs(u), np.abs(v))
            rel = np.where(diff == 0, 0.0, diff / np.where(scale > 0, scale, 1.0))
        abs_max = float(diff.max()) if diff.size else 0.0
        rel_max = float(rel.max()) if rel.size else 0.0
        if abs_max > worst.max_abs_diff or (
            abs_max == worst.max_abs_diff and rel_max > worst.max_rel_diff
        ):
            worst = OutputDifference(abs_max, rel_max, x.name, sampled)
    return OutputDifference(worst.max_abs_diff, worst.max_rel_diff, worst.leaf, sampled)
