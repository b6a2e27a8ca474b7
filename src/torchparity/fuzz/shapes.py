"""``torchparity fuzz --mode shape``: hypothesis searches the run shapes within
a case's declared dynamic ranges (``torchparity.strategies.run_shapes``) for
one on which the artifact, built once at the export shape with its dims
declared, is silently wrong (docs/shapes.md).

One property per (case, backend, device, precision): each example is a shape
cell (cell/shapes.py) at the drawn sizes, on the same built artifact; a
``silent-mismatch`` or ``silent-static`` outcome is the finding, shrunk to the
smallest sizes that show it. A property yields one row: ``pass`` with how many
shapes matched, ``fail`` with the shrunk shape and its reason, or ``skip``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torchparity._core import environment
from torchparity._core.errors import error_fields
from torchparity._core.row import Row
from torchparity._core.rundir import RunDir
from torchparity._core.status import Status
from torchparity.axes.matrix import Cell
from torchparity.cases.case import CASES
from torchparity.cases.reference import build_inputs
from torchparity.cases.shapes import export_sizes
from torchparity.cell.context import RunSettings, precheck
from torchparity.cell.execute import finish_row
from torchparity.cell.shapes import SHAPE_STAGES, SILENT_OUTCOMES, ShapeState
from torchparity.cell.stages import run_stages
from torchparity.fuzz.properties import FuzzProfile, hypothesis_settings
from torchparity.strategies import run_shapes

FUZZ_POINT = "fuzz"  # the shape_point of a fuzzed cell's id


class ShapeFinding(Exception):
    """A run shape on which the artifact is silently wrong; carries its row."""

    def __init__(self, row: Row) -> None:
        super().__init__(row.get("reason", ""))
        self.row = row


def fuzz_shape_cell(
    cell: Cell, settings: RunSettings, profile: FuzzProfile, examples: int | None
) -> Row:
    """The property of one shape cell: its row (without the environment)."""
    reason = precheck(cell)
    if reason:
        return Row(status=Status.SKIP, reason=reason)
    try:
        return _search(cell, settings, profile, examples)
    except Exception as exc:  # noqa: BLE001 - a property that cannot run is an error row
        fields = error_fields(exc, "fuzz")
        fields.pop("traceback", None)
        return Row(**fields)


def _search(cell: Cell, settings: RunSettings, profile: FuzzProfile, examples: int | None) -> Row:
    from hypothesis import given

    case = CASES[cell.case]
    export = export_sizes(build_inputs(case, settings.seed), case.dynamic)
    tried: list[Row] = []

    def check(sizes: dict[str, int]) -> None:
        state = ShapeState(cell, settings, sizes=dict(sizes))
        run_stages(state, SHAPE_STAGES)
        tried.append(state.row)
        if (
            state.row.get("shape_outcome") in SILENT_OUTCOMES
            or state.row.get("status") == Status.ERROR
        ):
            raise ShapeFinding(state.row)

    try:
        hypothesis_settings(profile, examples)(given(run_shapes(case.dynamic, export))(check))()
    except ShapeFinding as found:
        found.row["shapes_tried"] = len(tried)
        return found.row
    shapes = "; ".join(dict.fromkeys(str(r.get("run_shape", "")) for r in tried))
    row = Row(
        status=Status.PASS,
        reason="",
        shape_outcome="match",
        export_shape=",".join(f"{k}={v}" for k, v in export.items()),
        run_shape=shapes,
    )
    row["shapes_tried"] = len(tried)
    refused = [r for r in tried if r.get("shape_outcome") == "loud-error"]
    if tried and len(refused) == len(tried):  # every shape refused: nothing matched
        row.update(status=Status.SKIP, reason=refused[-1].get("reason", ""))
        row["shape_outcome"] = "loud-error"
    return row


def fuzz_shapes(
    cells: Sequence[Cell],
    settings: RunSettings,
    profile: FuzzProfile,
    run_dir: Path,
    examples: int | None = None,
) -> list[dict[str, Any]]:
    """Every shape property in turn, each row streamed to results.jsonl."""
    rd = RunDir(run_dir).create()
    env = environment.collect()
    env.setdefault("run_id", run_dir.name)
    rd.write_env(env)
    rows = []
    with rd.results_writer() as results:
        for cell in cells:
            began = time.perf_counter()
            row = fuzz_shape_cell(cell, settings, profile, examples)
            row["fuzz_s"] = round(time.perf_counter() - began, 3)
            for key in cell.as_dict():
                row.pop(key, None)
            final = finish_row(cell, row, env)
            results.append(final)
            rows.append(final)
    return rows
