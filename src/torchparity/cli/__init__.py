"""The command line: ``torchparity`` and ``python -m torchparity``.

One module per command, each with ``add_parser(sub)`` and ``main(args) -> int``;
the options of ``run`` are one table (``options.py``). Commands return exit
codes; printing and exit codes happen here, at the edge. Bad input raises
``UsageError``, which becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from torchparity._core.console import robust_standard_streams
from torchparity._core.errors import MachineFault, machine_fault
from torchparity.cli import compare, data, explain, export, fuzz, report, run, store
from torchparity.cli import list as list_command  # not the builtin's name
from torchparity.cli.common import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Parser, UsageError

# name -> module; the order is the order of `torchparity --help`.
COMMANDS = {
    "list": list_command,
    "run": run,
    "explain": explain,
    "fuzz": fuzz,
    "data": data,
    "report": report,
    "export": export,
    "compare": compare,
    "store": store,
}


DESCRIPTION = (
    "Benchmark and conformance suite for PyTorch deployment paths: run cases on "
    "backends, devices and precisions, judge each output against an fp64 reference, "
    "time it, and report why a cell fails. Options that take a list take comma lists "
    "and may be repeated. Each command's options: torchparity COMMAND --help; "
    "all of them: docs/cli.md."
)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="torchparity", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    robust_standard_streams()  # a cp1252 console must not crash the run on a name or reason
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command].main(args)
    except UsageError as exc:
        print(f"torchparity: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader stopped reading (`torchparity list | head`): not an error.
        # Point stdout at devnull so the interpreter's final flush stays quiet.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (OSError, MachineFault) as exc:  # a full or read-only disk: one line, the machine's
        fault = machine_fault(exc)
        if fault is None:
            raise
        print(f"torchparity: error: {fault}", file=sys.stderr)
        return EXIT_USAGE


__all__ = ["main", "build_parser", "UsageError"]
