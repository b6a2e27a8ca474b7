"""Validate the harness's timing against torch.utils.benchmark, and its repeatability.

    python benchmarks/validate_timing.py [--min-time 0.2] [--rounds 3] [--skip-repeatability]

Part 1 (accuracy): for a ladder of workloads from ~1 us to ~100 ms, the
harness's median (torchparity.timing.timer.measure) against torch.utils.benchmark.Timer's
blocked_autorange median, measured in this process, alternating A/B for
``--rounds`` rounds; the ratio is median(harness) / median(Timer).
Targets: |ratio - 1| <= 5% for workloads of 10 us and more.

Part 2 (overhead): the harness's median per call of a no-op callable, and the
extra time it adds to the tiny add compared with a bare Python loop. Target < 1 us.

Part 3 (repeatability): two back-to-back `torchparity run` of the models suite
(eager, cpu, every precision), with --threads 1 and with torch's default
threads; per-cell ratio of median latencies.
Target: median |ratio - 1| < 5% for cells of 1 ms and more.

Prints tables; writes the figures as CSV under reports/validate-<time>/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
import torch.utils.benchmark as tub

from torchparity.timing.timer import TimingConfig, measure


def ladder() -> list[tuple[str, Callable[[], object]]]:
    """Workloads from about 1 us to about 100 ms on a laptop CPU."""
    work: list[tuple[str, Callable[[], object]]] = []
    a, b = torch.ones(1), torch.ones(1)
    work.append(("add 1 element", lambda: torch.add(a, b)))
    for n in (32, 96, 256, 512, 1024, 1536):
        x, y = torch.randn(n, n), torch.randn(n, n)
        work.append((f"matmul {n}x{n}", lambda x=x, y=y: torch.mm(x, y)))
    from torchparity.suites.models.vision import SmallResNet

    model = SmallResNet().eval()
    img = torch.randn(8, 3, 32, 32)

    def resnet() -> object:
        with torch.inference_mode():
            return model(img)

    work.append(("resnet_small b=8", resnet))
    return work


def timer_median(fn: Callable[[], object], min_time: float) -> float:
    # Timer defaults to one thread; compare under the same threads as the harness.
    timer = tub.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_time).median


def harness_median(fn: Callable[[], object], min_time: float) -> float:
    return measure(fn, config=TimingConfig(min_time=min_time)).median


def accuracy(min_time: float, rounds: int) -> pd.DataFrame:
    rows = []
    for name, fn in ladder():
        ours, theirs = [], []
        for _ in range(rounds):  # alternate so slow drifts of the machine hit both alike
            ours.append(harness_median(fn, min_time))
            theirs.append(timer_median(fn, min_time))
        h, t = statistics.median(ours), statistics.median(theirs)
        rows.append(
            {
                "workload": name,
                "harness_us": h * 1e6,
                "timer_us": t * 1e6,
                "ratio": h / t,
                "target": "within 5%" if t >= 10e-6 else "(below 10 us)",
                "ok": abs(h / t - 1) <= 0.05 if t >= 10e-6 else None,
            }
        )
    return pd.DataFrame(rows)


def overhead(min_time: float) -> pd.DataFrame:
    a, b = torch.ones(1), torch.ones(1)
    noop = harness_median(lambda: None, min_time)
    n = 200_000
    best_bare = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            torch.add(a, b)
        best_bare = min(best_bare, (time.perf_counter() - start) / n)
    ours = harness_median(lambda: torch.add(a, b), min_time)
    return pd.DataFrame(
        [
            {"figure": "harness median of a no-op callable", "us_per_call": noop * 1e6},
            {
                "figure": "harness median of add minus bare loop (best of 5)",
                "us_per_call": (ours - best_bare) * 1e6,
            },
        ]
    )


def repeatability(out: Path, min_time: float, threads: int | None) -> pd.DataFrame:
    medians = []
    label = f"threads-{threads}" if threads else "threads-default"
    for i in (1, 2):
        run_dir = out / f"models-{label}-{i}"
        cmd = [
            sys.executable,
            "-m",
            "torchparity",
            "run",
            "--suite",
            "models",
            "--device",
            "cpu",
            "--out",
            str(run_dir),
            "--quiet",
            "--min-time",
            str(min_time),
        ]
        if threads:
            cmd += ["--threads", str(threads)]
        subprocess.run(cmd, check=True)
        frame = pd.read_csv(run_dir / "results.csv")
        frame = frame[frame.status.isin(["pass", "fail"])]
        medians.append(frame.set_index(["case", "precision"])["latency_ms_median"])
    both = pd.concat(medians, axis=1, keys=["first_ms", "second_ms"]).dropna()
    both["ratio"] = both.second_ms / both.first_ms
    return both.reset_index()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min-time", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-repeatability", action="store_true")
    parser.add_argument("--verbose", action="store_true", help="print every cell's ratio")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads for the accuracy part (default: torch's)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    out = (
        args.out or Path("reports") / f"validate-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}"
    )
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")

    acc = accuracy(args.min_time, args.rounds)
    acc.to_csv(out / "accuracy.csv", index=False)
    print("Accuracy: harness median vs torch.utils.benchmark blocked_autorange median")
    print(acc.to_string(index=False, float_format=lambda x: f"{x:.4g}"), "\n")

    ovh = overhead(args.min_time)
    ovh.to_csv(out / "overhead.csv", index=False)
    print("Overhead")
    print(ovh.to_string(index=False, float_format=lambda x: f"{x:.3f}"), "\n")

    # One intra-op thread, then torch's default: on a small shared machine the
    # default (all cores) competes with the OS and neighbours between runs.
    for threads in [] if args.skip_repeatability else [1, None]:
        label = f"--threads {threads}" if threads else "torch's default threads"
        rep = repeatability(out, 0.1, threads)
        rep.to_csv(out / f"repeatability-threads-{threads or 'default'}.csv", index=False)
        big = rep[rep.first_ms >= 1.0]
        dev = (big.ratio - 1).abs()
        print(
            f"Repeatability ({label}): two back-to-back runs of the models suite "
            "(eager, cpu, 4 precisions), ratio = second / first median"
        )
        if args.verbose:
            print(rep.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
        print(
            f"cells >= 1 ms: {len(big)}; median |ratio-1| = {dev.median():.2%} "
            f"(target < 5%); p90 = {dev.quantile(0.9):.2%}; max = {dev.max():.2%}\n"
        )
    print(f"\nfigures written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
