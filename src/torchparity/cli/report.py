"""``torchparity report``: render one run directory, or merge several into one report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from torchparity.cli.common import EXIT_OK, check_out_dir, run_dir_errors, warn_damage
from torchparity.report import merge
from torchparity.report import report as report_mod
from torchparity.run.runner import new_run_id


def add_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="render the reports of a run directory")
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write (default: the run directory; reports/merged-<id> for several)",
    )


def main(args: argparse.Namespace) -> int:
    with run_dir_errors():
        runs = merge.load_runs(args.run_dirs)
    warn_damage(args.run_dirs)
    # Merged rows must not overwrite one run's own results.csv: a new directory.
    default = args.run_dirs[0] if len(runs) == 1 else Path("reports") / f"merged-{new_run_id()}"
    out = args.out or default
    check_out_dir(out)
    paths = report_mod.render_runs(runs, out)
    print(f"report: {paths['html']}")
    return EXIT_OK
