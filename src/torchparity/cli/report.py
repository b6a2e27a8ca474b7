"""``torchparity report``: render one run directory, or merge several into one report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from torchparity._core.files import atomic_write_text
from torchparity.cli.common import (
    EXIT_OK,
    UsageError,
    check_out_dir,
    run_dir_errors,
    warn_damage,
)
from torchparity.report import merge, zoo
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
    p.add_argument(
        "--zoo-matrix",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the model zoo's compatibility matrix as Markdown to FILE "
        "(e.g. docs/zoo.md; hand-written text after its end marker is kept)",
    )


def main(args: argparse.Namespace) -> int:
    with run_dir_errors():
        runs = merge.load_runs(args.run_dirs)
    warn_damage(args.run_dirs)
    # Merged rows must not overwrite one run's own results.csv: a new directory.
    default = args.run_dirs[0] if len(runs) == 1 else Path("reports") / f"merged-{new_run_id()}"
    out = args.out or default
    check_out_dir(out)
    rows = merge.merged_rows(runs) if len(runs) > 1 else runs[0].rows
    if args.zoo_matrix is not None:
        _check_zoo_target(args.zoo_matrix, rows, args.run_dirs)
    paths = report_mod.render_runs(runs, out)
    print(f"report: {paths['html']}")
    if args.zoo_matrix is not None:
        source = ", ".join(d.name for d in args.run_dirs)
        text = zoo.markdown(rows, runs[0].env, source)
        target: Path = args.zoo_matrix
        existing = target.read_text(encoding="utf-8") if target.is_file() else None
        atomic_write_text(target, zoo.update_document(existing, text))
        print(f"zoo matrix: {target}")
    return EXIT_OK


def _check_zoo_target(target: Path, rows: list[dict[str, Any]], run_dirs: list[Path]) -> None:
    """Refuse, before writing anything, a target that is a directory or a run without zoo rows."""
    if target.is_dir():
        raise UsageError(f"--zoo-matrix {target} is a directory; name a Markdown file")
    if not zoo.zoo_rows(rows):
        names = ", ".join(str(d) for d in run_dirs)
        raise UsageError(
            f"{names} holds no zoo cells (suite zoo or zoo-ci, infer mode); run "
            "`torchparity run --suite zoo-ci` first"
        )
