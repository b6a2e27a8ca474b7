"""Matrix expansion: cases x modes x devices x precisions x backends -> cells, and sharding."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from torchparity.cases.case import Case


@dataclass(frozen=True)
class Cell:
    """One (case, device, precision, backend): the unit of work and one result row."""

    case: str
    kind: str
    suite: str
    device: str
    precision: str
    backend: str
    mode: str = "infer"  # "infer" or "train" (engine/training.py)

    @property
    def id(self) -> str:
        # Infer ids carry no mode, so run directories written before the mode
        # axis resume as they are; a train cell's id ends in "|train".
        base = f"{self.case}|{self.device}|{self.precision}|{self.backend}"
        return base if self.mode == "infer" else f"{base}|{self.mode}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def expand(
    cases: Iterable[Case],
    devices: Sequence[str],
    precisions: Sequence[str],
    backends: Sequence[str],
    suite: str = "",
    modes: Sequence[str] = ("infer",),
) -> list[Cell]:
    """Every combination, ordered case-major so per-case work (the reference)
    is reused by consecutive cells."""
    return [
        Cell(case.name, case.kind, suite, device, precision, backend, mode)
        for case in cases
        for mode in modes
        for device in devices
        for backend in backends
        for precision in precisions
    ]


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
