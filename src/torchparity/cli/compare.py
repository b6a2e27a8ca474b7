"""``torchparity compare``: a run against a baseline run; optionally a CI gate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from torchparity._core.rundir import RunDir
from torchparity.cli.common import (
    EXIT_FINDINGS,
    EXIT_NOT_JUDGED,
    EXIT_OK,
    UsageError,
    check_out_dir,
    run_dir_errors,
    warn,
    warn_damage,
)
from torchparity.report import compare as compare_mod
from torchparity.report import compare_render, merge


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "compare", help="compare a run with a baseline run; optionally gate on regressions"
    )
    p.add_argument("baseline", type=Path, metavar="BASELINE_DIR")
    p.add_argument("current", type=Path, metavar="CURRENT_DIR")
    p.add_argument(
        "--fail-on",
        default=None,
        metavar="throughput=N%,instructions=N%,drift,status,noisy",
        help="exit 1 when a cell regresses in any of these (the CI gate); exit 3 when none "
        "did but some cells could not be judged (too noisy for N%%, counts from other CPUs)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for compare.md and compare.html (default: CURRENT_DIR)",
    )
    p.add_argument(
        "--noise-floor",
        type=float,
        default=None,
        metavar="PERCENT",
        help=f"the least noise floor: changes below it are always noise (default "
        f"{compare_mod.NOISE_FLOOR:.0%}%; the floor in use is derived from the runs' rounds)",
    )
    p.add_argument(
        "--normalize",
        action="store_true",
        help="divide each round median by the calibration workload timed in the same window",
    )


def gate(text: str | None) -> compare_mod.Gate | None:
    """``--fail-on``, parsed; one that names no gate would silently gate nothing."""
    if text is None:
        return None
    try:
        parsed = compare_mod.parse_fail_on(text)
    except compare_mod.FailOnError as exc:
        raise UsageError(str(exc)) from None
    if parsed == compare_mod.Gate():
        raise UsageError(
            f"--fail-on {text!r} names no gate; valid: {', '.join(compare_mod.GATE_KINDS)}"
        )
    return parsed


def noise_floor(percent: float | None) -> float:
    if percent is None:
        return compare_mod.NOISE_FLOOR
    if not 0 <= percent < 100:
        raise UsageError("--noise-floor must be a percentage in [0, 100)")
    return percent / 100.0


def main(args: argparse.Namespace) -> int:
    fail_on = gate(args.fail_on)
    noise = noise_floor(args.noise_floor)
    with run_dir_errors():
        base, cur = merge.load_run(args.baseline), merge.load_run(args.current)
    warn_damage([args.baseline, args.current])
    out_path = args.out or args.current
    check_out_dir(out_path)
    comparison = compare_mod.compare_runs(
        base.rows, cur.rows, base.env, cur.env, noise_floor=noise, normalize=args.normalize
    )
    title = f"torchparity compare: {args.baseline.name} -> {args.current.name}"
    out = RunDir(out_path).create()
    out.write_text(out.compare_md.name, compare_render.markdown(comparison, title, fail_on))
    out.write_text(out.compare_html.name, compare_render.html_page(comparison, title, fail_on))
    for warning in comparison.warnings:
        warn(warning)
    print(compare_render.markdown(comparison, title, fail_on))
    print(f"compare: {out.compare_md}, {out.compare_html}", file=sys.stderr)
    if fail_on is None:
        return EXIT_OK
    outcome = comparison.outcome(fail_on)
    return {"failed": EXIT_FINDINGS, "not judged": EXIT_NOT_JUDGED}.get(outcome, EXIT_OK)
