"""Counted work where clocks cannot be trusted: user-space instructions per
call of a CPU cell, counted by valgrind's callgrind (``--count-instructions``).

On a shared machine a clock measures the neighbours as much as the code; an
instruction count does not move with load, frequency or preemption.

One counting process serves the whole run (``Counter``): it starts once
under ``valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no``,
imports torch once, and then, for each measured cell the run hands it,
rebuilds the cell from the artifact and reference caches up to its
prepared callable (nothing is unpickled: it prepares the cell as a worker
does; the verdict stages are the worker's), switches instrumentation
on, calls it ``WARMUP_CALLS`` times uncounted, collects ``CALLS`` calls
(one when a warm call takes over ``SLOW_CALL_S`` under valgrind)
(``torch._C._valgrind_toggle``, as torch.utils.benchmark does), dumps the
count to a file of its own and switches instrumentation off again. Without
instrumentation valgrind runs interpreter and library code ~5x slower instead
of ~50x, so the torch import costs seconds, not minutes. Valgrind runs every
lane of a fused multiply-add in a software helper, so the counting process
asks torch, oneDNN and MKL for their kernels without FMA
(``FMA_FREE_KERNELS``): a cifar_cnn call takes 0.10 s under callgrind instead
of 6.6 s, and the counts are of those kernels (recorded in
``instructions_method``; ``compare`` does not judge counts of other kernels
against them). ONNX Runtime has no such switch, so its convolutions still
run FMA: its largest cells are most of what counting costs. The rebuilt cell
skips the reference's vacuity check (the worker's verdict), another fp64
forward.
Instrumentation is switched by callgrind's client requests, compiled once
per run into a tiny shared library from valgrind's ``callgrind.h``; without a
C compiler or that header the process runs instrumented from the start
(slower, same counts).

What it sees: every user-space instruction the process retires in the
counted calls, on every thread (valgrind runs them one at a time), library
code included (MKL, oneDNN, ONNX Runtime). What it cannot see: memory stalls,
cache misses, frequency, SMT or preemption (time, not work), kernel time,
and GPU work (a CUDA or MPS cell is skipped with that reason). A C++ runner
cell (torchscript-cpp, aoti-cpp) runs its calls in the runner's own process:
the counting process rebuilds it as any cell, its runner started under
callgrind in turn (instrumentation and collection off,
``native_client.ENV_CALLGRIND``), and the runner itself warms up, collects
and dumps (its ``count`` command, compiled with callgrind's client requests
when valgrind's header was found at build time; ``Backend.count_calls``), so
the Python side's waiting is not what is counted. Without the header the
cell is skipped with that reason, as are the calls of other processes
(onnxruntime-node, onnxruntime-web). Counts of JIT-compiled code
(TorchScript's profiling executor) are of what valgrind's translation ran,
which is what the CPU would run.

``perf stat -e instructions`` would be faster, but needs hardware counters,
which virtual machines and containers often lack (this module does not rely on them).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torchparity.axes.matrix import Cell
from torchparity.backends.native_client import ENV_CALLGRIND
from torchparity.cases.case import PluginSpec

if TYPE_CHECKING:
    from torchparity.cell.context import RunSettings

WARMUP_CALLS = 2
# Counted calls: a warm cell's count barely moves (three counted runs of the
# models suite: lenet 10.308-10.310M, cifar_cnn 67.091-67.114M, its ONNX Runtime
# cell 27.667-27.669M), and valgrind runs each call ~50-150x slower than the
# CPU, so a slow call is counted once, a quick one 5 times.
CALLS = 5
# The verdict row's fields that key a rebuilt cell's artifacts (cell/pipeline.py).
KNOWN_FIELDS = ("input_digest", "behaviour_fingerprint")
SLOW_CALL_S = 0.5  # a warm-up call slower than this under valgrind: count one call
# Valgrind runs each lane of a fused multiply-add (AVX2's FMA) in a software
# helper, ~100x slower than other vector instructions: a warm cifar_cnn call took
# 6.1 s with the AVX2 kernels and 0.05 s with these under valgrind alone, 6.6 s
# and 0.10 s under callgrind (benchmarks/valgrind_kernels.py).
# So the counted process picks torch's, oneDNN's and MKL's kernels without FMA;
# its counts are of those kernels (the CPU's own AVX-512 ones valgrind cannot
# run at all), the same in every counted run.
FMA_FREE_KERNELS = {
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "AVX",
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",  # MKL's AVX-only path is SSE4.2 now (its warning)
}
START_ALLOWANCE_S = 600.0  # the counting process's start (torch's import under valgrind)
METHOD = (
    "callgrind Ir (user space, kernels without FMA: torch's {aten}, oneDNN's AVX, MKL's SSE4.2)"
)
OTHER_METHOD = "callgrind Ir (user space, torch's {aten} kernels)"  # not x86: no FMA switch
_TOTALS = re.compile(r"^totals:\s*(\d+)", re.MULTILINE)
RUNNER_OUT = "runner-%p.out"  # a C++ runner's callgrind out-file; numbered dumps after it
RUNNER_OUT_DUMPS = "runner-*.out.*"
_CLIENT_C = """#include <valgrind/callgrind.h>
void tp_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void tp_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
"""


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


def out_of_process(backend: str) -> str | None:
    """Why a backend whose calls run in a process of its own cannot be counted,
    or None (its calls are the counting process's, or its own process counts
    them: the C++ runner)."""
    from torchparity.backends import get_backend
    from torchparity.backends.base import Backend

    chosen = get_backend(backend)
    if type(chosen).measure is Backend.measure:
        return None
    if type(chosen).count_calls is Backend.count_calls:
        return (
            f"{backend} runs its calls in a process of its own, which is not under "
            "callgrind; not counted"
        )
    return chosen.counting_unavailable()


def kernel_choice() -> dict[str, str]:
    """The counting process's kernel settings: ``FMA_FREE_KERNELS`` on x86
    (the FMA valgrind runs in software), none elsewhere."""
    return FMA_FREE_KERNELS if platform.machine().lower() in ("x86_64", "amd64") else {}


def client_library(folder: Path) -> Path | None:
    """The client-request library (start and stop instrumentation),
    compiled into ``folder``; None without a C compiler or callgrind.h."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    source, lib = folder / "client.c", folder / "client.so"
    source.write_text(_CLIENT_C, encoding="utf-8")
    try:
        done = subprocess.run(
            [cc, "-shared", "-fPIC", "-O1", "-o", str(lib), str(source)],
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return lib if done.returncode == 0 and lib.is_file() else None


class Counter:
    """One process under callgrind that counts cell after cell (see the
    module's docstring); started at the first ``count``, again after a
    failure, stopped by ``close``. ``spec``: what it needs to rebuild cells
    (``spec_for``); ``timeout``: seconds one cell may take."""

    def __init__(self, spec: dict[str, Any], timeout: float) -> None:
        self.spec = spec
        self.timeout = timeout
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        self._ended = False  # the counting process's answers ended (it died)
        self._library: Path | None = None
        self.started_s = 0.0  # seconds spent starting counting processes

    def __enter__(self) -> Counter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def folder(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="torchparity-callgrind-")
            self._library = client_library(Path(self._tmp.name))
        return Path(self._tmp.name)

    def _start(self) -> None:
        folder = self.folder
        (folder / "spec.json").write_text(json.dumps(self.spec), encoding="utf-8")
        instrument = "no" if self._library else "yes"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--instr-atstart={instrument}",
            "--collect-atstart=no",
            f"--callgrind-out-file={folder / 'callgrind.out'}",
            sys.executable,
            "-m",
            "torchparity.run.instructions",
            str(folder / "spec.json"),
            str(self._library or ""),
        ]
        log = (folder / "counter.log").open("ab")
        self._proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            # Its C++ runners start under callgrind too, dumping beside its own.
            env={
                **os.environ,
                **kernel_choice(),
                "PYTHONWARNINGS": "ignore",
                ENV_CALLGRIND: str(folder / RUNNER_OUT),
            },
            start_new_session=True,  # killed whole on a timeout
        )
        log.close()
        self._buffer, self._ended = b"", False
        began = time.perf_counter()
        ready = self._read(START_ALLOWANCE_S)
        self.started_s += time.perf_counter() - began
        if ready != {"ready": True}:
            raise RuntimeError(f"the counting process did not start: {self._tail()}")

    def _tail(self) -> str:
        log = self.folder / "counter.log"
        lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return (lines or ["no output"])[-1][:200]

    def _read(self, timeout: float) -> dict[str, Any] | None:
        """The process's next answer line; None when it died or took too long."""
        assert self._proc is not None and self._proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                self._ended = True
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def count(self, cell: Cell, row: dict[str, Any] | None = None) -> dict[str, Any]:
        """Row columns: ``instructions_per_call`` (and how it was counted), or
        ``instructions_skip_reason``; and ``instructions_s``, the seconds the
        count added to the run (the counting process's start included).
        ``row``: the cell's verdict row, whose reference identity keys the
        rebuilt cell's artifacts (``KNOWN_FIELDS``)."""
        reason = unavailable(cell.device) or out_of_process(cell.backend)
        if reason:
            return {"instructions_skip_reason": reason}
        began = time.perf_counter()
        columns = self._count(cell, row or {})
        return {**columns, "instructions_s": round(time.perf_counter() - began, 3)}

    def _count(self, cell: Cell, known: dict[str, Any]) -> dict[str, Any]:
        try:
            if self._proc is None:
                self._start()
            assert self._proc is not None and self._proc.stdin is not None
            task = {"cell": cell.as_dict(), "known": {k: known.get(k) for k in KNOWN_FIELDS}}
            self._proc.stdin.write((json.dumps(task) + "\n").encode())
            self._proc.stdin.flush()
        except (OSError, RuntimeError) as exc:
            self._stop()
            return _failed(f"callgrind run failed: {exc}")
        answer = self._read(self.timeout)
        if answer is None:
            code = self._exit_code()
            self._stop()
            self._dumps()  # a half-counted cell's dump must not count for the next one
            if code is None:
                return {
                    "instructions_skip_reason": f"callgrind did not finish within {self.timeout:g}s"
                }
            return _failed(f"callgrind run failed (exit {code}): {self._tail()}", code)
        found = _TOTALS.findall(self._dumps())
        if "error" in answer:
            return _failed(f"callgrind run failed: {answer['error']}")
        return self._columns(found, int(answer.get("calls", CALLS)), str(answer.get("aten")))

    def _exit_code(self) -> int | None:
        """The counting process's exit code once its answers ended (valgrind
        still writes its dump as a killed process dies); None while it runs."""
        assert self._proc is not None
        if self._ended:
            with contextlib.suppress(subprocess.TimeoutExpired):
                return self._proc.wait(60)
        return self._proc.poll()

    def _dumps(self) -> str:
        """The dumps the process wrote since the last call (read, then removed)."""
        # Numbered dumps only: a runner's final dump at its exit (RUNNER_OUT
        # itself) holds nothing counted and may come late.
        dumps = sorted([*self.folder.glob("callgrind.out.*"), *self.folder.glob(RUNNER_OUT_DUMPS)])
        text = "".join(p.read_text(encoding="utf-8", errors="replace") for p in dumps)
        for p in dumps:
            p.unlink()
        return text

    @staticmethod
    def _columns(found: list[str], calls: int, aten: str) -> dict[str, Any]:
        """Row columns from the counts of one cell's dumps (exactly one
        expected) over ``calls`` counted calls; ``aten``: the CPU
        capability torch's kernels ran at in the counting process."""
        if len(found) != 1:
            return {"instructions_skip_reason": f"callgrind wrote {len(found)} counts for one cell"}
        return {
            "instructions_per_call": int(found[0]) / calls,
            "instructions_calls": calls,
            "instructions_method": (METHOD if kernel_choice() else OTHER_METHOD).format(aten=aten),
        }

    def close(self) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(30)
        self._stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


# What valgrind's SIGILL means (3.19 has no AVX-512): said first, before any truncation.
_SIGILL = (
    "valgrind cannot run an instruction of this cell's code (it has no AVX-512; an "
    "AOTInductor artifact compiled for this CPU uses it)"
)


def _failed(reason: str, code: int | None = None) -> dict[str, Any]:
    """A failed count's row column, explaining an instruction valgrind cannot run."""
    if code == -signal.SIGILL or "SIGILL" in reason:
        reason = f"{_SIGILL}: {reason}"
    return {"instructions_skip_reason": reason[:300]}


def count(
    cell: Cell, spec: dict[str, Any], timeout: float, row: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One cell's columns, in a counting process of its own (``Counter`` for many)."""
    with Counter(spec, timeout) as counter:
        return counter.count(cell, row)


def spec_for(settings: RunSettings, plugins: list[PluginSpec]) -> dict[str, Any]:
    """The JSON-able part of RunSettings the child needs."""
    return {
        "seed": settings.seed,
        "cache_dir": str(settings.cache_dir) if settings.cache_dir else None,
        "backend_options": settings.backend_options,
        "plugins": [list(p) for p in plugins],
    }


def _count_one(cell: Cell, settings: Any, library: Any, known: dict[str, Any]) -> dict[str, Any]:
    """Inside valgrind: rebuild the cell (keyed by ``known``, the verdict's
    row fields), warm it up, count its calls and dump."""
    import torch

    from torchparity.cell.pipeline import REBUILD_STAGES, RebuiltState, timed_call
    from torchparity.cell.stages import run_stages

    state = RebuiltState(cell, settings, known=known)
    # Up to the prepared callable: the verdict (call, compare, eager) was the worker's.
    if not run_stages(state, REBUILD_STAGES):
        return {"error": str(state.row.get("reason"))[:300]}
    state.memory.stop()
    backend = state.ctx.backend
    counted = backend.count_calls(
        state.prepared, state.fresh_inputs(), WARMUP_CALLS, CALLS, SLOW_CALL_S
    )
    aten = torch.backends.cpu.get_cpu_capability()  # FMA_FREE_KERNELS at work: DEFAULT
    if counted is not None:  # in the backend's own process (the C++ runner)
        return {"counted": cell.id, "calls": counted, "aten": aten}
    call = timed_call(state)
    collecting, calls = False, CALLS
    if library is not None:
        library.tp_start()
    try:
        for _ in range(WARMUP_CALLS):
            began = time.perf_counter()
            call()
        if time.perf_counter() - began > SLOW_CALL_S:
            calls = 1
        # The cyclic collector runs when the process's history says so, not the
        # cell's: off while counting, so counts do not depend on what came before.
        gc.collect()
        gc.disable()
        torch._C._valgrind_toggle()
        collecting = True
        for _ in range(calls):
            call()
    finally:
        gc.enable()
        if collecting:
            torch._C._valgrind_toggle_and_dump_stats()  # collection off, this cell's count dumped
        if library is not None:
            library.tp_stop()
    return {"counted": cell.id, "calls": calls, "aten": aten}


def _serve(spec_path: str, library_path: str) -> int:
    """Inside valgrind: answer one JSON line per cell read from stdin."""
    import ctypes

    import torch

    from torchparity.cases.case import load_all
    from torchparity.cell.context import RunSettings

    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # a library's prints must not garble the answers
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    torch.set_num_threads(1)  # valgrind serialises threads anyway; one keeps the count stable
    load_all([tuple(p) for p in spec["plugins"]])  # type: ignore[misc]
    settings = RunSettings(
        seed=spec["seed"],
        cache_dir=Path(spec["cache_dir"]) if spec["cache_dir"] else None,
        backend_options=spec["backend_options"],
        threads=1,
    )
    library = ctypes.CDLL(library_path) if library_path else None
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in sys.stdin:
        try:
            task = json.loads(line)
            answer = _count_one(Cell(**task["cell"]), settings, library, task["known"])
        except Exception as exc:  # noqa: BLE001 - the cell's reason, and the next cell
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_serve(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
