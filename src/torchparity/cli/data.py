"""``torchparity data``: DataLoader throughput on a synthetic CIFAR-10 (docs/training.md)."""

from __future__ import annotations

import argparse
import multiprocessing as mp
from pathlib import Path
from typing import Any

from torchparity._core import environment
from torchparity._core.rundir import RunDir
from torchparity.cli.common import EXIT_OK, UsageError, check_out_dir, choose, run_dir_errors
from torchparity.cli.options import DATA_OPTIONS, add_options
from torchparity.report import report as report_mod
from torchparity.run import data_throughput as data
from torchparity.run.progress import LogProgress
from torchparity.run.runner import new_run_id


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "data", help="DataLoader throughput on a synthetic CIFAR-10 (see docs/training.md)"
    )
    add_options(p, DATA_OPTIONS, with_defaults=True)


def _grid(args: argparse.Namespace) -> tuple[list[int], list[str] | None]:
    """The worker counts and start methods, checked."""
    try:
        workers = [int(w) for w in args.workers]
    except ValueError:
        raise UsageError(f"--workers takes whole numbers, not {','.join(args.workers)!r}") from None
    if any(w < 0 for w in workers) or min(args.samples, args.batch, args.epochs) < 1:
        raise UsageError("--workers must be >= 0; --samples, --batch and --epochs at least 1")
    methods = args.start_method
    if methods == ["all"]:
        methods = mp.get_all_start_methods()
    if methods:
        choose(methods, mp.get_all_start_methods(), "start method")
    return workers, methods or None


def main(args: argparse.Namespace) -> int:
    workers, methods = _grid(args)
    if args.out is not None:
        check_out_dir(args.out)
    run_dir = RunDir(args.out or Path("reports") / new_run_id()).create()
    with run_dir_errors():
        env = run_dir.read_env() if run_dir.env_json.is_file() else environment.collect()
        done = run_dir.done_cell_ids() if run_dir.has_results() else set()
    env.setdefault("run_id", run_dir.path.name)
    run_dir.write_env(env)
    grid = list(data.default_grid(workers, methods))
    progress = LogProgress("data")  # a line at a steady interval, also where no terminal is
    with run_dir.results_writer() as writer, progress:
        for index, config in enumerate(grid):
            progress(index, len(grid))
            if data.cell_id(config, args.samples, args.batch, args.epochs) in done:
                continue  # measured already: a resumed directory keeps its rows
            row = data.data_row(config, args.samples, args.batch, args.epochs)
            writer.append({**row, **environment.row_fields(env), "run_id": env.get("run_id")})
    rows = run_dir.rows()
    paths = report_mod.render(rows, run_dir.path, env)
    if not args.quiet:
        print(report_mod.markdown_table(report_mod.dataloader_table(rows), escape=False))
        print(f"results: {paths['csv']}\nreport:  {paths['html']}")
    return EXIT_OK
