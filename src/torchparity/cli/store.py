"""``torchparity store add``: keep run directories' rows in the results store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from torchparity.cli.common import EXIT_OK, UsageError
from torchparity.store import local


def add_parser(sub: Any) -> None:
    p = sub.add_parser("store", help="keep runs' rows in the results store")
    actions = p.add_subparsers(dest="store_command", required=True)
    add = actions.add_parser("add", help="add run directories (a run already there is skipped)")
    add.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR")
    add.add_argument(
        "--store",
        type=Path,
        default=None,
        help="store file (default: the user's data folder, or $TORCHPARITY_STORE)",
    )


def main(args: argparse.Namespace) -> int:
    store = args.store or local.default_store()
    for run_dir in args.run_dirs:
        try:
            added = local.add_run(store, run_dir)
        except local.StoreError as exc:
            raise UsageError(str(exc)) from None
        print(f"store: {run_dir} {'added' if added else 'already stored'} -> {store}")
    return EXIT_OK
