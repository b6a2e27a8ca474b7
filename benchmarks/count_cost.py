"""What instruction counting costs, in CPU seconds (load-independent, where
wall time on a shared machine is not).

    python benchmarks/count_cost.py RUN_DIR CACHE_DIR

Feeds one counting process (run/instructions.py ``Counter``) every row of
RUN_DIR, a finished ``torchparity run`` whose artifacts are in CACHE_DIR (its
``--cache-dir``), and prints each cell's count and the counting process's CPU
time, its start included. The process runs one thread, so on an idle
machine its CPU time is the wall time ``--count-instructions`` adds to a run.
Linux with valgrind only.
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "src")]  # this checkout, installed or not

from torchparity._core.rundir import RunDir  # noqa: E402
from torchparity.axes.matrix import Cell  # noqa: E402
from torchparity.run import instructions  # noqa: E402


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    run_dir, cache_dir = Path(sys.argv[1]), Path(sys.argv[2])
    rows = RunDir(run_dir).rows()
    seed = int(rows[0].get("seed") or 0) if rows else 0
    spec = {"seed": seed, "cache_dir": str(cache_dir), "backend_options": {}, "plugins": []}
    began = time.perf_counter()
    with instructions.Counter(spec, 1200) as counter:
        for r in rows:
            cell = Cell(r["case"], r["kind"], r["suite"], r["device"], r["precision"], r["backend"])
            out = counter.count(cell, r)
            found = out.get("instructions_per_call") or out.get("instructions_skip_reason")
            print(f"{cell.id}: {found} ({out.get('instructions_s')} s)", flush=True)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"{len(rows)} cells: {time.perf_counter() - began:.0f} s wall; the counting process "
        f"{used.ru_utime + used.ru_stime:.0f} CPU s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
