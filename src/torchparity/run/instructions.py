"""Counted work where clocks cannot be trusted: user-space instructions per
call of a CPU cell, counted by valgrind's callgrind (``--count-instructions``).

On a shared machine a clock measures the neighbours as much as the code; an
instruction count does not move with load, frequency or preemption. The
count runs in a child process under ``valgrind --tool=callgrind
--collect-atstart=no``: the child rebuilds the cell from the artifact and
reference caches (nothing is unpickled: it prepares the cell as a worker
does), calls it ``WARMUP_CALLS`` times uncounted, then switches collection on
(``torch._C._valgrind_toggle``, as torch.utils.benchmark does) for ``CALLS``
calls. Callgrind is slow (~50x, more for the torch import): opt-in, CPU only.

What it sees: every user-space instruction the process retires in the
counted calls, on every thread (valgrind runs them one at a time), library
code included (MKL, oneDNN, ONNX Runtime). What it cannot see: memory stalls,
cache misses, frequency, SMT or preemption (time, not work), kernel time,
and GPU work (a CUDA or MPS cell is skipped with that reason). Counts of
JIT-compiled code (TorchScript's profiling executor) are of what valgrind's
translation ran, which is what the CPU would run.

``perf stat -e instructions`` would be faster, but needs hardware counters,
which virtual machines and containers often lack (this module does not rely on them).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torchparity.axes.matrix import Cell
from torchparity.cases.case import PluginSpec

if TYPE_CHECKING:
    from torchparity.cell.context import RunSettings

WARMUP_CALLS = 2
CALLS = 5
_TOTALS = re.compile(r"^(?:summary|totals):\s*(\d+)", re.MULTILINE)


def unavailable(device: str) -> str | None:
    """Why instructions cannot be counted for a cell on ``device`` here, or None."""
    if device != "cpu":
        return f"instruction counts are for CPU cells; {device} work is not instructions of this process"
    if not sys.platform.startswith("linux"):
        return f"callgrind (valgrind) is not available on {sys.platform}"
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (apt-get install valgrind)"
    import torch

    if not torch._C._valgrind_supported_platform():
        return "this torch build cannot toggle callgrind collection"
    return None


def count(cell: Cell, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Row columns: ``instructions_per_call`` (and how it was counted), or
    ``instructions_skip_reason``. ``spec``: what the child needs to rebuild
    the cell (seed, cache_dir, backend_options, plugins; the child counts on 1 thread)."""
    reason = unavailable(cell.device)
    if reason:
        return {"instructions_skip_reason": reason}
    with tempfile.TemporaryDirectory(prefix="torchparity-callgrind-") as tmp:
        spec_file, out_file = Path(tmp) / "spec.json", Path(tmp) / "callgrind.out"
        spec_file.write_text(json.dumps({**spec, "cell": cell.as_dict()}), encoding="utf-8")
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--collect-atstart=no",
            f"--callgrind-out-file={out_file}",
            sys.executable,
            "-m",
            "torchparity.run.instructions",
            str(spec_file),
        ]
        try:
            proc = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=timeout,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
        except subprocess.TimeoutExpired:
            return {"instructions_skip_reason": f"callgrind did not finish within {timeout:g}s"}
        found = _TOTALS.search(out_file.read_text(encoding="utf-8")) if out_file.is_file() else None
        if proc.returncode != 0 or found is None:
            tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return {
                "instructions_skip_reason": f"callgrind run failed (exit {proc.returncode}): {tail[:200]}"
            }
    return {
        "instructions_per_call": int(found.group(1)) / CALLS,
        "instructions_calls": CALLS,
        "instructions_method": "callgrind Ir (user space)",
    }


def spec_for(settings: RunSettings, plugins: list[PluginSpec]) -> dict[str, Any]:
    """The JSON-able part of RunSettings the child needs."""
    return {
        "seed": settings.seed,
        "cache_dir": str(settings.cache_dir) if settings.cache_dir else None,
        "backend_options": settings.backend_options,
        "plugins": [list(p) for p in plugins],
    }


def _child(spec_path: str) -> int:
    """Inside valgrind: rebuild the cell, warm it up, count ``CALLS`` calls."""
    import torch

    from torchparity.cases.case import load_all
    from torchparity.cell.context import RunSettings
    from torchparity.cell.pipeline import VERDICT_STAGES, CellState, timed_call
    from torchparity.cell.stages import run_stages

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    torch.set_num_threads(1)  # valgrind serialises threads anyway; one keeps the count stable
    load_all([tuple(p) for p in spec["plugins"]])  # type: ignore[misc]
    settings = RunSettings(
        seed=spec["seed"],
        cache_dir=Path(spec["cache_dir"]) if spec["cache_dir"] else None,
        backend_options=spec["backend_options"],
        threads=1,
    )
    state = CellState(Cell(**spec["cell"]), settings)
    if not run_stages(state, VERDICT_STAGES):
        print(state.row.get("reason"), file=sys.stderr)
        return 1
    call = timed_call(state)
    for _ in range(WARMUP_CALLS):
        call()
    torch._C._valgrind_toggle()
    for _ in range(CALLS):
        call()
    torch._C._valgrind_toggle()
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
