"""``torchparity explain``: localize one model cell of a run directory
(docs/localization.md). The run's selection gives the seed and backend options;
its plugins and case files are never loaded from run.json: they must be given again."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from torchparity._core.rundir import RunDir
from torchparity.axes.devices import DEVICES
from torchparity.axes.matrix import Cell
from torchparity.axes.precision import PRECISIONS
from torchparity.backends import backend_names
from torchparity.cases.case import CASES, Case
from torchparity.cases.shapes import SHAPE_POINTS
from torchparity.cell.context import RunSettings, apply_thread_settings
from torchparity.cli.backend_options import parse_backend_options
from torchparity.cli.common import (
    EXIT_OK,
    UsageError,
    choose,
    load,
    plugins,
    run_dir_errors,
    valid_names,
)
from torchparity.cli.options import Once, add_plugin_options
from torchparity.diagnose import localize as loc_mod
from torchparity.diagnose.shape_localize import localize_point
from torchparity.report import report as report_mod
from torchparity.run.progress import LogProgress


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "explain", help="localize a model cell of a run: per-layer error and culprit"
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    # One cell: each option takes one value (a second, different one is refused).
    p.add_argument("--case", required=True, action=Once)
    p.add_argument("--backend", required=True, action=Once)
    p.add_argument("--precision", required=True, action=Once)
    p.add_argument("--device", default="cpu", action=Once, help="default cpu")
    p.add_argument(
        "--shape-point",
        default=None,
        action=Once,
        metavar="POINT",
        help=f"a shape cell (--mode shape): its run-shape point ({', '.join(SHAPE_POINTS)})",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        action=Once,
        metavar="SECONDS",
        help="time for isolating layers one by one (default 60)",
    )
    add_plugin_options(p)


def _case(args: argparse.Namespace, sel: dict) -> Case:
    """The model case to localize, with a hint naming the run's case files when it is unknown."""
    case = CASES.get(args.case)
    if case is None:
        stored = ", ".join(
            str(p[1]) for p in sel.get("plugins", []) if isinstance(p, list) and len(p) == 2
        )
        hint = (
            f"; the run loaded {stored}: pass them again with --case-file/--plugin"
            if stored
            else ""
        )
        models = [c.name for c in CASES.values() if c.kind == "model"]
        raise UsageError(f"unknown case {args.case!r}; {valid_names(args.case, models)}{hint}")
    if case.kind != "model":
        raise UsageError(f"{args.case} is an op; explain localizes model cells")
    return case


def _settings(rd: RunDir, sel: dict) -> RunSettings:
    """The run's seed, backend options and threads, as run.json stores them."""
    seed = sel.get("seed", 0)
    if not isinstance(seed, int):
        raise UsageError(f"{rd.run_json} holds a seed that is not an integer")
    threads = sel.get("threads")
    return RunSettings(
        seed=seed,
        backend_options=parse_backend_options(sel.get("backend_option", [])),
        output_dir=rd.path,
        localize="off",
        threads=threads if isinstance(threads, int) and threads > 0 else None,
    )


def main(args: argparse.Namespace) -> int:
    rd = RunDir(args.run_dir)
    with run_dir_errors():
        sel = rd.read_selection()
    load(plugins(args))
    case = _case(args, sel)
    choose([args.backend], backend_names(), "backend")
    choose([args.precision], list(PRECISIONS), "precision")
    choose([args.device], list(DEVICES), "device")
    if args.budget is not None and args.budget <= 0:
        raise UsageError("--budget must be positive")
    settings = _settings(rd, sel)
    apply_thread_settings(settings)
    if args.shape_point is not None:
        choose([args.shape_point], list(SHAPE_POINTS), "shape point")
    cell = Cell(
        case.name,
        case.kind,
        str(sel.get("suite") or ""),
        args.device,
        args.precision,
        args.backend,
        "shape" if args.shape_point else "infer",
        args.shape_point or "",
    )
    budget = args.budget or loc_mod.DEFAULT_BUDGET_S
    try:
        with LogProgress("explain", budget=budget):  # a line at a steady interval
            if args.shape_point:
                loc, setup, layers = localize_point(cell, settings, budget)
            else:
                loc, setup, layers = loc_mod.localize(cell, settings, budget)
    except loc_mod.LocalizeError as exc:
        raise UsageError(str(exc)) from None
    saved = loc_mod.save(rd.path, loc, setup, layers)
    if rd.has_results():
        with run_dir_errors(f"; the table is in {saved['csv']}"):
            report_mod.render(rd.rows(), rd.path, rd.read_env())
    print(report_mod.markdown_table(loc.table(), escape=False))
    print(report_mod.localization_summary(saved["record"], rd.localization_dir))
    print(f"table: {saved['csv']}")
    return EXIT_OK
