"""What a run does after a cell's stages: localize a model cell when the run
asks for it (``--localize``; docs/localization.md), an inference cell by
localize.py, a shape cell whose artifact gave other numbers than eager by
shape_localize.py."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from torchparity._core.errors import first_line
from torchparity.cell.context import RunSettings
from torchparity.cell.generate import GenerateState
from torchparity.cell.pipeline import CellState
from torchparity.cell.shapes import ShapeState
from torchparity.diagnose.generate_localize import localizable, localize_step
from torchparity.diagnose.localize import CellSetup, LayerCall, Localization, localize, save
from torchparity.diagnose.shape_localize import localize_shape

Found = tuple[Localization, CellSetup, list[LayerCall]]
# Shape outcomes a layer table can explain: a wrong number (and, with
# --localize, a match); a refusal or a static signature is its own explanation.
LOCALIZED_OUTCOMES = ("silent-mismatch", "match")


def should_localize(mode: str, row: dict[str, Any]) -> bool:
    if mode == "all":
        return row.get("status") in ("pass", "fail")
    return mode == "auto" and row.get("status") == "fail"


def after_cell(state: CellState | GenerateState) -> None:
    """Localize a finished model cell when the run asks for it."""
    settings, row = state.settings, state.row
    if settings.localize == "off" or state.cell.kind != "model":
        return
    if not should_localize(settings.localize, row) or settings.output_dir is None:
        return
    if isinstance(state, GenerateState):
        after_generate(state)
        return
    if isinstance(state, ShapeState):
        shape = state  # narrowed, for the closure
        if row.get("shape_outcome") in LOCALIZED_OUTCOMES:
            record_localization(
                settings,
                row,
                lambda: localize_shape(shape.cell, settings, shape.export_inputs, shape.inputs),
            )
        return
    record_localization(settings, row, lambda: localize(state.cell, settings))


def record_localization(
    settings: RunSettings, row: dict[str, Any], find: Callable[[], Found]
) -> None:
    """Write the table and reproducer ``find`` gives into the run directory and
    ``culprit`` into the row. Never changes the cell's verdict: a failure here
    is a ``localize_error``."""
    try:
        loc, s, layers = find()
        paths = save(settings.output_dir, loc, s, layers)
        row["culprit"] = loc.culprit or ""
        row["localization_file"] = paths["csv"].name
        row["localize_s"] = round(loc.seconds, 3)
    except Exception as exc:  # noqa: BLE001 - localization must not turn a verdict into a crash
        row["localize_error"] = first_line(exc)
        row["localize_traceback"] = traceback.format_exc()[-4000:]


def after_generate(state: GenerateState) -> None:
    """A failing generate cell's divergent decode step through the layer
    localizer; a layer over its bound becomes the row's culprit, else the
    verdict's (``kv-cache``, ``forward``) stays."""
    row = state.row
    why = localizable(state)
    if why:
        row["localize_note"] = why
        return
    verdict_culprit = row.get("culprit", "")
    record_localization(state.settings, row, lambda: localize_step(state))
    if row.get("culprit"):  # a layer: the path's forward is off there at this step
        row["generation_culprit"] = verdict_culprit
    else:
        row["culprit"] = verdict_culprit
