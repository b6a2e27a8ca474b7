"""``torchparity export``: a run directory in another tool's format."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from torchparity._core.files import atomic_write_text
from torchparity.cli.common import EXIT_OK, UsageError, run_dir_errors
from torchparity.report import export as export_mod
from torchparity.report import merge


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="write a run directory in another tool's format")
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    p.add_argument("--format", required=True, choices=export_mod.FORMATS)
    p.add_argument(
        "--out", type=Path, default=None, help="file to write (default: standard output)"
    )


def main(args: argparse.Namespace) -> int:
    if args.out is not None and args.out.is_dir():
        raise UsageError(f"--out {args.out} is a directory; export writes one file")
    with run_dir_errors():
        run = merge.load_run(args.run_dir)
    data = export_mod.pytest_benchmark_json(run.rows, run.env)
    text = json.dumps(data, indent=4, ensure_ascii=True) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        atomic_write_text(args.out, text)
        print(f"export: {len(data['benchmarks'])} benchmarks -> {args.out}", file=sys.stderr)
    return EXIT_OK
