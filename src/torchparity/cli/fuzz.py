"""``torchparity fuzz``: search for inputs on which backends disagree on ops."""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import sys
from pathlib import Path
from typing import Any

from torchparity._core import cache as cache_mod
from torchparity._core.console import plural
from torchparity._core.rundir import RunDir
from torchparity._core.status import Status
from torchparity.axes.devices import DEVICES
from torchparity.axes.matrix import Cell
from torchparity.axes.precision import PRECISIONS
from torchparity.backends import backend_names
from torchparity.cases.case import CASES, PluginSpec
from torchparity.cell.context import RunSettings
from torchparity.cli.common import (
    EXIT_FINDINGS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    UsageError,
    choose,
    load,
    locked,
    plugins,
    valid_names,
)
from torchparity.cli.options import FUZZ_OPTIONS, add_options, add_plugin_options
from torchparity.fuzz import properties as fuzz
from torchparity.fuzz.shapes import FUZZ_POINT, fuzz_shapes
from torchparity.report import frames
from torchparity.report import report as report_mod
from torchparity.report.shapes import shape_table
from torchparity.run.progress import LogProgress
from torchparity.run.runner import new_run_id, terminal_progress


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "fuzz", help="search for inputs on which backends disagree on ops (hypothesis)"
    )
    add_options(p, FUZZ_OPTIONS, with_defaults=True)
    add_plugin_options(p)


def _ops(patterns: list[str], shape: bool = False) -> list:
    """The op cases matching ``patterns``; in shape mode, every case (op or
    model) that declares dynamic dims."""
    ops = [c for c in CASES.values() if (c.dynamic if shape else c.kind == "op")]
    if not patterns:
        return ops
    names = [c.name for c in ops]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            raise UsageError(f"no op matches {pattern!r}; {valid_names(pattern, names)}")
    return [c for c in ops if any(fnmatch.fnmatchcase(c.name, p) for p in patterns)]


def plan_fuzz(args: argparse.Namespace) -> tuple[list, Any, Path, list[PluginSpec]]:
    """Check the fuzz options; return (targets, profile, run dir, plugins)."""
    specs = plugins(args)
    load(specs)
    if args.profile not in fuzz.PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; valid: {', '.join(fuzz.PROFILES)}")
    choose([args.mode], ["infer", "shape"], "mode")
    ops = _ops(args.op, args.mode == "shape")
    backends = choose(args.backend, backend_names(), "backend")
    devices = choose(args.device, list(DEVICES), "device")
    precisions = choose(args.precision, list(PRECISIONS), "precision")
    if args.out is not None and RunDir(args.out).has_results():
        raise UsageError(f"{args.out} already holds results; choose another --out")
    targets = [
        fuzz.Target(c, b, d, p) for c in ops for d in devices for b in backends for p in precisions
    ]
    run_dir = args.out or Path("reports") / new_run_id()
    return targets, fuzz.PROFILES[args.profile], run_dir, specs


def main(args: argparse.Namespace) -> int:
    targets, profile, run_dir, specs = plan_fuzz(args)
    if args.cache_dir is not None and (why := cache_mod.check_writable(args.cache_dir)):
        raise UsageError(f"--cache-dir: {why}")
    with locked(run_dir):
        if RunDir(run_dir).has_results():
            raise UsageError(f"{run_dir} already holds results; choose another --out")
        if args.mode == "shape":
            return _fuzz_shapes(args, targets, profile, run_dir)
        return _fuzz(args, targets, profile, run_dir, specs)


def _fuzz_shapes(args: argparse.Namespace, targets: list, profile: Any, run_dir: Path) -> int:
    """Shape mode: one property per case x backend x device x precision over run shapes."""
    cells = [
        Cell(
            t.case.name, t.case.kind, "fuzz", t.device, t.precision, t.backend, "shape", FUZZ_POINT
        )
        for t in targets
    ]
    cache = args.cache_dir.resolve() if args.cache_dir else None
    settings = RunSettings(
        cache_dir=cache, use_artifact_cache=cache is not None, output_dir=run_dir
    )
    if not args.quiet:
        print(
            f"torchparity fuzz --mode shape: {plural(len(cells), 'property')} -> {run_dir}",
            file=sys.stderr,
        )
    rows = fuzz_shapes(cells, settings, profile, run_dir, args.examples)
    paths = report_mod.render(rows, run_dir, RunDir(run_dir).read_env())
    if not args.quiet:
        print(report_mod.frame_counts_line(rows))
        table = shape_table(rows)
        if not table.empty:
            print(report_mod.markdown_table(table, escape=False))
        print(f"report: {paths['html']}")
    findings = any(r.get("status") in (Status.FAIL, Status.ERROR) for r in rows)
    return EXIT_FINDINGS if args.strict and findings else EXIT_OK


def _show(rows: list, found: list, run_dir: Path, html: Path) -> None:
    print(report_mod.frame_counts_line(rows))
    if found:
        columns = ["op", "backend", "precision", "status", "reason"]
        table = frames.columns(fuzz.divergences_frame(found), columns)
        print(report_mod.markdown_table(table, escape=False))
    print(f"divergences: {RunDir(run_dir).divergences_csv} ({len(found)})\nreport:      {html}")


def _fuzz(
    args: argparse.Namespace, targets: list, profile: Any, run_dir: Path, specs: list[PluginSpec]
) -> int:
    show = not args.quiet
    log = LogProgress("fuzz") if show and not sys.stderr.isatty() else None
    progress = terminal_progress() if show and sys.stderr.isatty() else log
    if show:
        print(
            f"torchparity fuzz: {plural(len(targets), 'property')}, profile {profile.name} -> {run_dir}",
            file=sys.stderr,
        )
    try:
        with log or contextlib.nullcontext():
            rows, found = fuzz.fuzz_run(
                targets,
                profile,
                run_dir,
                args.examples,
                specs,
                progress,
                args.cache_dir.resolve() if args.cache_dir else None,
            )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; properties so far are in {RunDir(run_dir).results_jsonl}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    paths = report_mod.render(rows, run_dir, RunDir(run_dir).read_env())
    if show:
        _show(rows, found, run_dir, paths["html"])
    findings = any(r.get("status") in (Status.FAIL, Status.ERROR) for r in rows)
    return EXIT_FINDINGS if args.strict and findings else EXIT_OK
