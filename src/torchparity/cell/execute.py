"""One cell, whatever its mode: the entry every run, fuzz target and
``assert_parity`` call goes through. It picks the cell's stages (inference,
training, or several samples per cell), then finishes the row in contract order.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any

from torchparity._core import environment
from torchparity._core.errors import error_fields
from torchparity._core.row import Row
from torchparity._core.status import Status
from torchparity.axes.matrix import Cell
from torchparity.cases.case import CASES
from torchparity.cell.multisample import execute_multisample
from torchparity.cell.pipeline import CellState, RunSettings, precheck, run_stages
from torchparity.cell.training import execute_train_cell
from torchparity.verdicts import expectations

# What a run does after an inference cell's stages (localization, from the run layer).
AfterStages = Callable[[CellState], None]


def own_path(cell: Cell) -> str | None:
    """ "train" or "samples" for a cell run by its own stages (cell/training.py,
    cell/multisample.py) in one timing window; None for the inference stages."""
    if cell.mode == "train":
        return "train"
    case = CASES.get(cell.case)
    return "samples" if case is not None and case.extra.get("samples") is not None else None


def execute_cell(cell: Cell, settings: RunSettings, after: AfterStages | None = None) -> Row:
    """Run one cell through its stages and return its row (without the
    environment fields). A stage returning False ends the cell (a skip)."""
    path = own_path(cell)
    if path == "train":
        return execute_train_cell(cell, settings)  # type: ignore[return-value]
    if path == "samples":
        return _execute_multisample(cell, settings)
    state = CellState(cell, settings)
    run_stages(state)
    if after is not None:
        after(state)
    return state.row  # type: ignore[return-value]


def _execute_multisample(cell: Cell, settings: RunSettings) -> Row:
    """A case with a sample source (the OpInfo suites): the same precheck, then
    every sample through the backend (cell/multisample.py)."""
    try:
        reason = precheck(cell)
    except Exception as exc:  # noqa: BLE001 - a finding, not a crash
        return error_fields(exc, "precheck")  # type: ignore[return-value]
    if reason:
        return {"status": Status.SKIP.value, "reason": reason}  # type: ignore[return-value]
    return execute_multisample(cell, CASES[cell.case], settings)  # type: ignore[return-value]


def apply_known_failures(cell: Cell, row: dict[str, Any]) -> dict[str, Any]:
    """A fail or error matching a known-failure mark of the case becomes xfail;
    expectations and blame columns (verdicts/expectations.py)."""
    return expectations.apply(CASES.get(cell.case), cell, row)


def finish_row(cell: Cell, row: dict[str, Any], env: dict[str, Any]) -> Row:
    """The row in contract order: the cell, the verdict, the measurements, the environment."""
    row = apply_known_failures(cell, row)
    out: dict[str, Any] = {
        **cell.as_dict(),
        "mode": row.pop("mode", cell.mode),
        "status": str(row.pop("status")),
        "reason": row.pop("reason", ""),
    }
    out.update(row)
    out.update(environment.row_fields(env))
    out["cell_id"] = cell.id
    out["run_id"] = env.get("run_id")
    out["finished_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return out  # type: ignore[return-value]
