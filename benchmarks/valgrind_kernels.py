"""Why the instruction counter picks kernels without FMA: one eager model's
call under valgrind, with torch's, oneDNN's and MKL's usual kernels and with
``run/instructions.py``'s ``FMA_FREE_KERNELS``.

    python benchmarks/valgrind_kernels.py [--case cifar_cnn] [--tool none|callgrind]

Each setting runs in a process of its own under ``valgrind --tool=TOOL``
(callgrind with instrumentation on, collection off), builds the case's model
and inputs as a run does (seed 0), calls it 4 times at one thread and prints
each call's seconds: the first call includes one-time set-up, the others are
what counting pays per call. Valgrind runs each lane of an FMA instruction in
a software helper, so the usual (AVX2 FMA) kernels are far slower under it.
Linux with valgrind only; the figures are wall time, so run it on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src")]  # this checkout, installed or not

from torchparity.run.instructions import FMA_FREE_KERNELS  # noqa: E402

CALLS = 4
_CHILD = """
import sys, time
import torch
from torchparity.cases.case import CASES, load_all
from torchparity.cases.inputs import cast_inputs
from torchparity.cases.reference import build_inputs, build_module
torch.set_num_threads(1)
load_all([])
case = CASES[sys.argv[1]]
module = build_module(case, 0).eval().float()
inputs = cast_inputs(build_inputs(case, 0), torch.float32, torch.device("cpu"))  # fp32, as a cell
print("torch kernels:", torch.backends.cpu.get_cpu_capability(), flush=True)
with torch.no_grad():
    for _ in range({calls}):
        began = time.perf_counter()
        module(*inputs)
        print(f"call {{time.perf_counter() - began:.3f}} s", flush=True)
"""


def _run(case: str, tool: str, kernels: dict[str, str]) -> list[str]:
    """The child's lines under valgrind with ``kernels`` in its environment."""
    options = ["--instr-atstart=yes", "--collect-atstart=no"] if tool == "callgrind" else []
    cmd = ["valgrind", f"--tool={tool}", *options, "--log-file=/dev/null"]
    cmd += ["--callgrind-out-file=/dev/null"] if tool == "callgrind" else []
    child = _CHILD.format(calls=CALLS)
    env = {**os.environ, **kernels, "PYTHONPATH": str(ROOT / "src"), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [*cmd, sys.executable, "-c", child, case], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        return [f"failed (exit {done.returncode}): {done.stderr.strip()[-300:]}"]
    return [line for line in done.stdout.splitlines() if line.startswith(("torch", "call"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--case", default="cifar_cnn", help="a model case (default cifar_cnn)")
    parser.add_argument("--tool", choices=("none", "callgrind"), default="none")
    args = parser.parse_args()
    if not sys.platform.startswith("linux") or shutil.which("valgrind") is None:
        print("needs Linux with valgrind installed", file=sys.stderr)
        return 2
    for label, kernels in (("usual kernels", {}), ("FMA_FREE_KERNELS", FMA_FREE_KERNELS)):
        print(f"{args.case}, valgrind --tool={args.tool}, {label}:")
        for line in _run(args.case, args.tool, kernels):
            print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
