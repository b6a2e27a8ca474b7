"""Matrix expansion: cases x modes x devices x precisions x backends -> cells, and sharding."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from torchparity.cases.case import Case
from torchparity.cases.generation import generation_of
from torchparity.cases.shapes import SHAPE_POINTS


@dataclass(frozen=True)
class Cell:
    """One (case, device, precision, backend): the unit of work and one result row."""

    case: str
    kind: str
    suite: str
    device: str
    precision: str
    backend: str
    # "infer", "train" (cell/training.py), "shape" (cell/shapes.py) or "generate" (cell/generate.py)
    mode: str = "infer"
    # Shape mode: the run shape relative to the export shape (cases/shapes.py SHAPE_POINTS).
    shape_point: str = ""
    # A batch sweep (--batch): the infer cell's batch; 0: the case's own.
    sweep_batch: int = 0

    @property
    def id(self) -> str:
        # Infer ids carry no mode, so run directories written before the mode
        # axis resume as they are; a train cell's id ends in "|train", a shape
        # cell's in "|shape|<point>", a swept cell's in "|batch=<n>".
        base = f"{self.case}|{self.device}|{self.precision}|{self.backend}"
        if self.mode != "infer":
            base += f"|{self.mode}" + (f"|{self.shape_point}" if self.shape_point else "")
        return base + (f"|batch={self.sweep_batch}" if self.sweep_batch else "")

    def as_dict(self) -> dict[str, Any]:
        """The cell's fields (``shape_point`` and ``sweep_batch`` only when set)."""
        out = asdict(self)
        for unset in ("shape_point", "sweep_batch"):
            if not out[unset]:
                del out[unset]
        return out


def expand(
    cases: Iterable[Case],
    devices: Sequence[str],
    precisions: Sequence[str],
    backends: Sequence[str],
    suite: str = "",
    modes: Sequence[str] = ("infer",),
    batches: Sequence[int] = (),
) -> list[Cell]:
    """Every combination, ordered case-major so per-case work (the reference)
    is reused by consecutive cells; a shape-mode cell per run-shape point,
    innermost, so the points of one artifact follow each other; an infer
    cell per batch of ``batches`` (a sweep; empty: the case's own batch)."""
    return [
        Cell(case.name, case.kind, suite, device, precision, backend, mode, point, batch)
        for case in cases
        for mode in modes
        for batch in _batches(case, mode, batches)
        for device in devices
        for backend in backends
        for precision in precisions
        for point in (SHAPE_POINTS if mode == "shape" else ("",))
    ]


def _batches(case: Case, mode: str, batches: Sequence[int]) -> Sequence[int]:
    """The batches of ``case``'s cells in ``mode``: a generate cell at batch 1
    and at the case's generation batch (or each of a sweep's), each its own row."""
    if mode == "infer":
        return _swept(case, batches)
    if mode == "generate":
        spec = generation_of(case.extra)
        if batches:
            return batches
        return (1, 0) if spec is not None and spec.batch > 1 else (0,)
    return (0,)


def _swept(case: Case, batches: Sequence[int]) -> Sequence[int]:
    """The batches of a sweep for ``case``; a multi-sample case (OpInfo) has its
    samples' own batches, so it is not swept."""
    return batches if batches and case.extra.get("samples") is None else (0,)


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` with 1 <= i <= n -> (i, n)."""
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise ValueError(f"malformed shard {text!r}; expected i/n, e.g. 1/4") from None
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"malformed shard {text!r}; need 1 <= i <= n")
    return index, count


def shard(cells: Sequence[Cell], index: int, count: int) -> list[Cell]:
    """Cells of shard ``index`` of ``count`` (1-based). Cells of one case stay
    in one shard so its reference is computed once; the assignment depends only
    on the case name, so it is the same on every machine and disjoint."""
    if count == 1:
        return list(cells)
    by_case: dict[str, int] = {}
    cases = sorted({c.case for c in cells})
    # Round-robin over sorted case names balances shards better than hashing
    # when there are few cases; it is still a pure function of the case list.
    for i, name in enumerate(cases):
        by_case[name] = i % count
    return [c for c in cells if by_case[c.case] == index - 1]
