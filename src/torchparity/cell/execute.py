"""One cell, whatever its mode: the entry every run, fuzz target and
``assert_parity`` call goes through. It picks the cell's state and stages
(inference, training, shape, or several samples per cell), runs them through the one
runner (cell/stages.py), then finishes the row in contract order.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from typing import Any

from torchparity._core import environment
from torchparity._core.row import Row, add_columns
from torchparity.axes.matrix import Cell
from torchparity.backends import runtime_language
from torchparity.cases.case import CASES
from torchparity.cell.context import RunSettings
from torchparity.cell.generate import GENERATE_STAGES, GenerateState
from torchparity.cell.multisample import SAMPLE_STAGES, SamplesState
from torchparity.cell.pipeline import STAGES, CellState
from torchparity.cell.shapes import SHAPE_STAGES, SILENT_OUTCOMES, ShapeState
from torchparity.cell.stages import run_stages
from torchparity.cell.training import TRAIN_STAGES, TrainState
from torchparity.verdicts import expectations

# What a run does after an inference or shape cell's stages (localization, from the run layer).
AfterStages = Callable[[Any], None]  # a CellState or a GenerateState


def own_path(cell: Cell) -> str | None:
    """ "train", "shape", "generate" or "samples" for a cell run by its own
    stages (cell/training.py, cell/shapes.py: no timing, cell/generate.py,
    cell/multisample.py) in one timing window; None for the inference stages."""
    if cell.mode in ("train", "shape", "generate"):
        return cell.mode
    case = CASES.get(cell.case)
    return "samples" if case is not None and case.extra.get("samples") is not None else None


def execute_cell(cell: Cell, settings: RunSettings, after: AfterStages | None = None) -> Row:
    """Run one cell through its mode's stages and return its row (without the
    environment fields). A stage returning False ends the cell (a skip)."""
    path = own_path(cell)
    if path == "train":
        train = TrainState(cell, settings)
        run_stages(train, TRAIN_STAGES)
        return train.row
    if path == "shape":
        shape = ShapeState(cell, settings)
        run_stages(shape, SHAPE_STAGES)
        if after is not None:
            after(shape)
        return shape.row
    if path == "generate":
        generate = GenerateState(cell, settings)
        run_stages(generate, GENERATE_STAGES)
        if after is not None:
            after(generate)
        return generate.row
    if path == "samples":
        samples = SamplesState(cell, settings)
        run_stages(samples, SAMPLE_STAGES)
        return samples.row
    state = CellState(cell, settings)
    run_stages(state, STAGES)
    if after is not None:
        after(state)
    return state.row


def apply_known_failures(cell: Cell, row: dict[str, Any]) -> None:
    """A fail or error matching a known-failure mark of the case becomes xfail;
    expectations and blame columns (verdicts/expectations.py). In place."""
    case = CASES.get(cell.case)
    if row.get("shape_outcome") in SILENT_OUTCOMES:
        # A case's marks describe its cells at the shape they were built at;
        # an artifact wrong at another shape is a finding of its own.
        case = None
    expectations.apply(case, cell, row)


def finish_row(cell: Cell, row: dict[str, Any], env: dict[str, Any]) -> Row:
    """The row in contract order: the cell, the verdict, the measurements, the environment."""
    columns = dict(row)
    columns["status"] = str(columns["status"])  # the plain value from here on (a Status is a str)
    apply_known_failures(cell, columns)
    out = Row()
    add_columns(out, cell.as_dict())
    out["mode"] = columns.pop("mode", cell.mode)
    language = runtime_language(cell.backend)
    if language is not None:
        out["runtime_language"] = language
    # The precision that ran: the cell's, unless the backend said otherwise.
    out["effective_precision"] = columns.pop("effective_precision", None) or cell.precision
    out["status"] = columns.pop("status")
    out["reason"] = columns.pop("reason", "")
    add_columns(out, columns)
    add_columns(out, environment.row_fields(env))
    out["cell_id"] = cell.id
    out["run_id"] = env.get("run_id")
    out["finished_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return out
