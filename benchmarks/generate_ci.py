"""Time the generate-ci selection (docs/generation.md): 3 decoders and 1
encoder-decoder, 16 new tokens per prompt, over the generation paths at fp32
and bf16, from a warm cache.

    python benchmarks/generate_ci.py [--backends eager,compile,...] [--runs 2]

Runs `torchparity run --suite generate-ci --mode generate` ``--runs`` times
into reports/generate-ci-bench-<n> with one shared --cache-dir (the first run
warms it: references, exported and compiled artifacts, inductor's caches) and
prints each run's wall time and status counts. The figure docs/generation.md
quotes is the last (warm) run's. Target: under 6 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = "eager,compile,export,onnxruntime,executorch,openvino"


def run_once(out: Path, cache: Path, backends: str, tokens: int) -> float:
    if out.exists():
        shutil.rmtree(out)
    command = [
        *(sys.executable, "-m", "torchparity", "run", "--suite", "generate-ci"),
        *("--mode", "generate", "--max-new-tokens", str(tokens), "--device", "cpu"),
        *("--precision", "fp32,bf16", "--backend", backends, "--min-time", "0.01"),
        *("--quiet", "--out", str(out), "--cache-dir", str(cache)),
    ]
    began = time.perf_counter()
    subprocess.run(command, check=False)
    return time.perf_counter() - began


def counts(out: Path) -> dict[str, int]:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines() if line]
    return dict(collections.Counter(f"{r['backend']}:{r['status']}" for r in rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=BACKENDS)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    args = parser.parse_args()
    cache = ROOT / "reports" / "generate-ci-bench-cache"
    for n in range(1, args.runs + 1):
        out = ROOT / "reports" / f"generate-ci-bench-{n}"
        seconds = run_once(out, cache, args.backends, args.max_new_tokens)
        state = "cold" if n == 1 else "warm"
        print(f"run {n} ({state} cache): {seconds:.0f} s; {counts(out)}", flush=True)


if __name__ == "__main__":
    main()
