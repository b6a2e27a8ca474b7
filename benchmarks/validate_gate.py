"""Validate the compare gate and the paired speedup on this machine.

    python benchmarks/validate_gate.py [--rounds 3] [--threads 1] [--case GLOB ...] [--out DIR]
                                       [--neighbours N] [--slowdown F] [--count-instructions]
                                       [--env KEY=VALUE ...]

Three runs of the same selection (a few models-suite cases plus the cases of
benchmarks/slowdown_cases.py, eager and ONNX Runtime, CPU, fp32), sharing one
artifact cache:
  A1, A2  identical code;
  B       TORCHPARITY_PLANTED_SLOWDOWN=1.2 (``--slowdown``): the planted_* cases do
          20% more work.

Then, with the gate `--fail-on throughput=10%` (and `instructions=10%`):
  (a) A/A: A1 -> A2, share of measured cells the gate flags (target 0);
  (b) A/B: A2 -> B, share of planted cells flagged (target >= 90%) and
      flags on the untouched cells (target 0);
  (c) speedup repeatability: |speedup_vs_eager(A2) / speedup_vs_eager(A1) - 1|
      over the cells that have one (target median < 3%).
Each is shown for the round-based gate, the same after dividing by the
calibration workload (--normalize), and the old one-window U test on the
samples (for contrast). Prints the table; writes it as CSV under --out.

``--count-instructions`` runs the three with ``run --count-instructions``
and adds the instruction gate to the table, and the cost of counting: each
run's wall time and the seconds the counts added (the rows'
``instructions_s``). The CI target: the models suite over eager and ONNX
Runtime at fp32 (``--case '*'``) with counts adds under 3 minutes to a run on
a 2-core machine. Timing figures are only meaningful on a quiet machine (or
with ``--neighbours`` on purpose); the instruction figures hold on any.

``--threads 0`` times at torch's default thread count; ``--env KEY=VALUE``
sets a variable for the three runs (``OMP_WAIT_POLICY=PASSIVE``): with
``--neighbours`` these measure the thread and wait-policy defaults
(docs/measurement.md). The table's round-spread row is the A/A runs'
round-to-round spread per cell (median, p90, max).

``--neighbours N`` starts N bursty neighbour processes for the three runs
(each busy for a random 1-6 s, then idle for a random 1-6 s, seeded): the
shared machine the gate must survive, made on purpose.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import multiprocessing as mp
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]  # this checkout, installed or not

from torchparity._core.rundir import RunDir  # noqa: E402
from torchparity.report import compare  # noqa: E402

PLANTED = ROOT / "benchmarks" / "slowdown_cases.py"
DEFAULT_CASES = [
    "mlp",
    "lenet",
    "cifar_cnn",
    "resnet_small",
    "mobile_cnn",
    "attention_block",
    "planted_*",
    "steady_*",
]
GATE = compare.Gate(throughput=0.10)
INSTRUCTION_GATE = compare.Gate(instructions=0.10)


def _neighbour(seed: int) -> None:
    rng = random.Random(seed)
    while True:
        busy_until = time.perf_counter() + rng.uniform(1, 6)
        while time.perf_counter() < busy_until:
            pass
        time.sleep(rng.uniform(1, 6))


@contextlib.contextmanager
def neighbours(count: int):
    """``count`` bursty CPU-burning processes while the block runs."""
    procs = [
        mp.get_context("spawn").Process(target=_neighbour, args=(i,), daemon=True)
        for i in range(count)
    ]
    for proc in procs:
        proc.start()
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.join(5)


def run(out: Path, cache: Path, args: argparse.Namespace, slowdown: str | None) -> list[dict]:
    # The runs use this checkout's code, not whichever torchparity the environment installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    env.pop("TORCHPARITY_PLANTED_SLOWDOWN", None)
    env.update(args.env)
    if slowdown:
        env["TORCHPARITY_PLANTED_SLOWDOWN"] = slowdown
    cmd = [
        sys.executable,
        "-m",
        "torchparity",
        "run",
        "--case-file",
        str(PLANTED),
        "--suite",
        "models",
        "--backend",
        "eager,onnxruntime",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        *(["--threads", str(args.threads)] if args.threads else []),
        "--rounds",
        str(args.rounds),
        "--time-budget",
        "0",
        "--cache-dir",
        str(cache),
        "--out",
        str(out),
        "--quiet",
    ]
    if args.count_instructions:
        cmd.append("--count-instructions")
    for pattern in args.case:
        cmd += ["--case", pattern]
    print(
        "$",
        " ".join(cmd[1:])
        + "".join(f"  ({k}={v})" for k, v in args.env.items())
        + (f"  (TORCHPARITY_PLANTED_SLOWDOWN={slowdown})" if slowdown else ""),
        flush=True,
    )
    began = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    rows = RunDir(out).rows()
    counted = sum(float(r.get("instructions_s") or 0.0) for r in rows)
    n = sum(1 for r in rows if r.get("instructions_per_call"))
    print(
        f"  {out.name}: {time.perf_counter() - began:.0f} s wall"
        + (
            f", of which counting {counted:.0f} s ({n} cells counted)"
            if args.count_instructions
            else ""
        ),
        flush=True,
    )
    return rows


def one_window(rows: list[dict]) -> list[dict]:
    """The rows as the one-window gate saw them: no rounds, samples only."""
    return [
        {k: v for k, v in r.items() if k not in ("round_medians_ms", "calibration_round_ms")}
        for r in rows
    ]


def flagged(base: list[dict], cur: list[dict], method: str) -> tuple[set[str], compare.Comparison]:
    if method == "instructions":
        result = compare.compare_runs(base, cur)
        return {c.case + "/" + c.backend for c, _ in result.regressions(INSTRUCTION_GATE)}, result
    if method == "one window (U test)":
        result = compare.compare_runs(one_window(base), one_window(cur))
    else:
        result = compare.compare_runs(base, cur, normalize=method.endswith("calibration"))
    return {c.case + "/" + c.backend for c, _ in result.regressions(GATE)}, result


def measured(rows: list[dict], method: str = "") -> set[str]:
    column = "instructions_per_call" if method == "instructions" else "throughput_items_s"
    return {r["case"] + "/" + r["backend"] for r in rows if r.get(column)}


def speedup_drift(a: list[dict], b: list[dict]) -> np.ndarray:
    sa = {r["cell_id"]: r.get("speedup_vs_eager") for r in a}
    drift = [
        abs(r["speedup_vs_eager"] / sa[r["cell_id"]] - 1)
        for r in b
        if r.get("speedup_vs_eager") and sa.get(r["cell_id"])
    ]
    return np.asarray(drift, dtype=float)


def round_spread_row(a1: list[dict], a2: list[dict]) -> dict:
    """The A/A runs' round-to-round spread: per cell, the pooled sd of the log
    round medians of both runs (~ the relative spread of one round)."""
    spreads = np.asarray(
        [
            c.round_spread
            for c in compare.compare_runs(a1, a2).changes
            if c.round_spread is not None
        ],
        dtype=float,
    )
    figure = (
        f"{np.median(spreads):.1%}; {np.quantile(spreads, 0.9):.1%}; {spreads.max():.1%}"
        f" over {spreads.size} cells"
        if spreads.size
        else "no cell with rounds"
    )
    return {
        "check": "(a) A/A: round-to-round spread (median; p90; max)",
        "method": "rounds",
        "figure": figure,
        "share": float(np.median(spreads)) if spreads.size else float("nan"),
        "target": "small",
        "met": bool(spreads.size),
        "noise floor": "",
    }


def table(a1: list[dict], a2: list[dict], b: list[dict], slowdown: str) -> pd.DataFrame:
    rows = []
    methods = ["rounds", "rounds / calibration", "one window (U test)"]
    if any(r.get("instructions_per_call") for r in b):
        methods.insert(0, "instructions")
    for method in methods:
        cells = measured(a1, method) & measured(a2, method) & measured(b, method)
        planted = {c for c in cells if c.startswith("planted")}
        untouched = cells - planted
        aa, aa_cmp = flagged(a1, a2, method)
        ab, ab_cmp = flagged(a2, b, method)
        timed = method != "instructions"
        noisy = "; too noisy to judge" if timed and aa_cmp.too_noisy(GATE) else ""
        rows += [
            {
                "check": "(a) A/A: cells flagged at 10%",
                "method": method,
                "figure": f"{len(aa & cells)}/{len(cells)}{noisy}",
                "share": len(aa & cells) / max(len(cells), 1),
                "target": "0",
                "met": not (aa & cells),
                "noise floor": f"{aa_cmp.noise_floor:.1%}" if timed else "",
            },
            {
                "check": f"(b) A/B: planted +{float(slowdown) - 1:.0%} caught",
                "method": method,
                "figure": f"{len(ab & planted)}/{len(planted)}",
                "share": len(ab & planted) / max(len(planted), 1),
                "target": ">= 90%",
                "met": len(ab & planted) >= 0.9 * len(planted),
                "noise floor": f"{ab_cmp.noise_floor:.1%}" if timed else "",
            },
            {
                "check": "(b) A/B: untouched cells flagged",
                "method": method,
                "figure": f"{len(ab & untouched)}/{len(untouched)}",
                "share": len(ab & untouched) / max(len(untouched), 1),
                "target": "0",
                "met": not (ab & untouched),
                "noise floor": "",
            },
        ]
    rows.append(round_spread_row(a1, a2))
    drift = speedup_drift(a1, a2)
    if drift.size:
        rows.append(
            {
                "check": "(c) speedup drift A1 -> A2 (median; p90)",
                "method": "paired blocks",
                "figure": f"{np.median(drift):.1%}; {np.quantile(drift, 0.9):.1%} over {drift.size} cells",
                "share": float(np.median(drift)),
                "target": "median < 3%",
                "met": bool(np.median(drift) < 0.03),
                "noise floor": "",
            }
        )
    return pd.DataFrame(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads in the runs (0: torch's default)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable for the three runs (e.g. OMP_WAIT_POLICY=PASSIVE)",
    )
    parser.add_argument("--case", action="append", default=None, metavar="GLOB")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--neighbours",
        type=int,
        default=0,
        metavar="N",
        help="bursty CPU-burning processes beside the runs (default 0)",
    )
    parser.add_argument(
        "--slowdown", default="1.2", metavar="F", help="the planted cases' work factor in B"
    )
    parser.add_argument(
        "--count-instructions",
        action="store_true",
        help="count instructions per call too: the instruction gate and its cost",
    )
    args = parser.parse_args()
    args.case = args.case or DEFAULT_CASES
    bad = [e for e in args.env if "=" not in e]
    if bad:
        parser.error(f"--env takes KEY=VALUE, not {bad[0]!r}")
    args.env = dict(e.split("=", 1) for e in args.env)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or ROOT / "reports" / f"validate-gate-{stamp}"
    cache = out / "cache"
    with neighbours(args.neighbours):
        a1 = run(out / "A1", cache, args, None)
        a2 = run(out / "A2", cache, args, None)
        b = run(out / "B", cache, args, args.slowdown)
    result = table(a1, a2, b, args.slowdown)
    out.mkdir(parents=True, exist_ok=True)
    result.to_csv(out / "gate.csv", index=False)
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(result.drop(columns=["share"]).to_string(index=False))
    print(f"\nruns and gate.csv: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
