"""The one stage runner and its vocabulary.

Every mode of a cell is a list of named stages run over a state by
:func:`run_stages`; the names come from one vocabulary, in this order:

    precheck -> build -> reference -> prepare -> call | train | samples -> compare -> eager -> timing

(inference uses all but train and samples; training: precheck, reference,
train, compare, timing; a multi-sample cell: precheck, samples, reference,
prepare, compare, timing). A stage returns False to end the cell (a skip, its
row already says why); an exception ends it as an ``error`` row whose
``error_stage`` is the stage's name, so a worker survives bad cells.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar, get_args

from torchparity._core.errors import error_fields
from torchparity._core.row import Row, add_columns
from torchparity._core.status import Status
from torchparity.axes.matrix import Cell
from torchparity.cell.context import CellContext, RunSettings, precheck, resolve

StageName = Literal[
    "precheck",
    "build",
    "reference",
    "prepare",
    "call",
    "train",
    "samples",
    "compare",
    "eager",
    "timing",
]
STAGE_NAMES: tuple[str, ...] = get_args(StageName)


class NothingToCompare(Exception):
    """The outputs hold nothing a verdict could rest on."""


@dataclass
class CellRun:
    """What a cell's stages hand each other: the cell, the run's settings, the
    row being built, and (from the precheck stage on) the resolved context.
    Each mode adds the fields its own stages fill."""

    cell: Cell
    settings: RunSettings
    row: Row = field(default_factory=lambda: Row(status=Status.PASS, reason=""))
    # Set by ``stage_precheck``; a later stage reading it earlier is a harness bug.
    ctx: CellContext = field(init=False, repr=False)


S = TypeVar("S", bound=CellRun)
Stage = Callable[[S], bool]
Stages = Sequence[tuple[StageName, Callable[[S], bool]]]


def check_precheck(s: CellRun) -> bool:
    """The precheck rules (a skip row when the cell cannot run here), then the
    cell's parts resolved once into ``s.ctx``."""
    reason = precheck(s.cell)
    if reason:
        s.row.update(status=Status.SKIP, reason=reason)
        return False
    s.ctx = resolve(s.cell, s.settings)
    return True


# Where this process is: (cell id, stage) while a stage runs, None between
# cells. A worker mirrors it where its parent reads it after a crash or a hang
# (run/worker.py), so the row can say the stage that died: in ``build`` or
# ``reference`` it is the case's own code, on every backend.
StageListener = Callable[[tuple[str, str] | None], None]
_LISTENERS: list[StageListener] = []
_WHERE: list[tuple[str, str] | None] = [None]


def listen_to_stages(listener: StageListener) -> None:
    """Call ``listener`` with (cell id, stage) as each stage starts, and with
    what was running before (None between cells) when a cell's stages end."""
    _LISTENERS.append(listener)


def _at(where: tuple[str, str] | None) -> None:
    _WHERE[0] = where
    for listener in _LISTENERS:
        listener(where)


def run_stages(state: S, stages: Stages[S]) -> bool:
    """Run ``stages`` over ``state`` in order; True when every one completed
    (none skipped, raised or found nothing to compare)."""
    outer = _WHERE[0]  # stages run inside a stage (localization) hand back to it
    try:
        for name, stage in stages:
            _at((state.cell.id, name))
            try:
                if not stage(state):
                    return False
            except NothingToCompare as exc:
                state.row.update(status=Status.ERROR, reason=f"{name}: {exc}")
                state.row["error_stage"], state.row["error_type"] = name, "NothingToCompare"
                return False
            except Exception as exc:  # noqa: BLE001 - a cell's failure is a finding, not a crash
                add_columns(state.row, error_fields(exc, name))
                return False
        return True
    finally:
        _at(outer)
