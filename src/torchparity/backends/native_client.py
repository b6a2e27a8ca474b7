"""The native runner as a child process: started once per prepared cell (it
loads the artifact, like a C++ service at start-up), then asked over stdin for
one call (outputs back in a tensor file) or a timing measurement (samples back
as JSON). Protocol: docs/native-runner.md."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import torch

from torchparity.backends import tensor_io
from torchparity.timing.measurement import Measurement
from torchparity.timing.timer import TimingConfig

PREFIX = "@@torchparity "
# Set to a callgrind out-file (valgrind's %p allowed) in the instruction
# counter's process (run/instructions.py): its runners start under callgrind,
# instrumentation and collection off until the count command turns them on.
ENV_CALLGRIND = "TORCHPARITY_NATIVE_CALLGRIND"


class NativeRunnerError(RuntimeError):
    """The runner answered with an error (the artifact failed to load or to run)."""


class NativeRunnerCrash(RuntimeError):
    """The runner process died (signal or exit code) instead of answering."""


def _how_it_died(returncode: int | None) -> str:
    if returncode is None:
        return "stopped answering"
    if returncode < 0:
        try:
            return f"died of {signal.Signals(-returncode).name}"
        except ValueError:
            return f"died of signal {-returncode}"
    return f"exited with code {returncode}"


def _runner_env() -> dict[str, str]:
    env = dict(os.environ)
    if sys.platform == "win32":  # the runner finds torch's DLLs on PATH
        lib = Path(torch.__file__).parent / "lib"
        env["PATH"] = f"{lib}{os.pathsep}{env.get('PATH', '')}"
    return env


def _pipes(proc: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    """The child's stdin and stdout (started with both as pipes: never None)."""
    if proc.stdin is None or proc.stdout is None:
        raise RuntimeError("the runner process was started without its pipes")
    return proc.stdin, proc.stdout


def _shut(proc: subprocess.Popen[bytes], workdir: Path, stderr: IO[bytes]) -> None:
    """Stop the process and remove its directory (also run by the GC finalizer)."""
    stdin, stdout = _pipes(proc)
    try:
        if proc.poll() is None:
            try:
                stdin.write(b"quit\n")
                stdin.flush()
                proc.wait(timeout=5)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
    finally:
        for stream in (stdin, stdout, stderr):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        shutil.rmtree(workdir, ignore_errors=True)


class Runner(Protocol):
    """What a backend needs of a runner (a process, or a browser page)."""

    info: dict[str, Any]

    def call(self, inputs: Sequence[torch.Tensor]) -> tuple[list[str], list[torch.Tensor]]: ...

    def measure(self, inputs: Sequence[torch.Tensor], config: TimingConfig) -> Measurement: ...

    def close(self) -> None: ...


def under_callgrind(command: list[str]) -> list[str]:
    """``command`` started under callgrind when ``$TORCHPARITY_NATIVE_CALLGRIND``
    names an out-file, else as it is."""
    out_file = os.environ.get(ENV_CALLGRIND)
    if not out_file:
        return command
    return [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        "--collect-atstart=no",
        f"--callgrind-out-file={out_file}",
        *command,
    ]


def time_command(config: TimingConfig) -> str:
    """The protocol's ``time`` line for ``config``."""
    numbers = (
        config.min_time,
        config.min_repeats,
        config.max_repeats,
        config.max_time,
        config.warmup_time,
        config.max_warmup_time,
    )
    return "time " + " ".join(repr(n) for n in numbers)


def measurement(answer: dict[str, Any]) -> Measurement:
    """A runner's answer to ``time`` as a Measurement."""
    return Measurement(
        samples_s=[float(s) for s in answer["samples_s"]],
        number=int(answer["number"]),
        warmup_calls=int(answer["warmup_calls"]),
    )


class RunnerProcess:
    """A child process speaking the runner protocol (docs/native-runner.md),
    started with ``command`` plus ``--workdir DIR --parent-pid PID``; ``label``
    names it in errors (e.g. "native runner", "node runner")."""

    def __init__(
        self, command: Sequence[str], env: dict[str, str] | None = None, label: str = "runner"
    ) -> None:
        self.label = label
        self.workdir = Path(tempfile.mkdtemp(prefix="torchparity-runner-"))
        self._stderr = open(self.workdir / "stderr.log", "wb")
        full = [*command, "--workdir", str(self.workdir), "--parent-pid", str(os.getpid())]
        self.proc = subprocess.Popen(
            full, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env
        )
        self._stdin, self._stdout = _pipes(self.proc)
        self._finalizer = weakref.finalize(self, _shut, self.proc, self.workdir, self._stderr)
        self.info: dict[str, Any] = self._answer("load")

    def _stderr_tail(self) -> str:
        try:
            text = (self.workdir / "stderr.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1][:300] if lines else ""

    def _answer(self, stage: str) -> dict[str, Any]:
        """The next protocol line: its JSON payload, or NativeRunnerError /
        NativeRunnerCrash. Other stdout lines (the model's prints) are kept aside."""
        while True:
            raw = self._stdout.readline()
            if not raw:
                try:
                    code = self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    code = None
                tail = self._stderr_tail()
                raise NativeRunnerCrash(
                    f"{self.label} {_how_it_died(code)} during {stage}"
                    + (f"; stderr: {tail}" if tail else "")
                )
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not line.startswith(PREFIX):
                continue  # a model's own print, not a protocol line
            status, _, payload = line[len(PREFIX) :].partition(" ")
            if status == "error":
                raise NativeRunnerError(payload)
            return json.loads(payload) if payload else {}

    def _command(self, line: str, stage: str) -> dict[str, Any]:
        try:
            self._stdin.write(line.encode("utf-8") + b"\n")
            self._stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it died already; _answer says how
        return self._answer(stage)

    def _put_inputs(self, inputs: Sequence[Any]) -> None:
        tensors = [x for x in inputs]
        if not all(isinstance(x, torch.Tensor) for x in tensors):
            raise TypeError(f"the {self.label} takes tensor inputs only")
        tensor_io.save(self.workdir / "inputs.bin", tensors)

    def call(self, inputs: Sequence[torch.Tensor]) -> tuple[list[str], list[torch.Tensor]]:
        """One call: the output leaves (names as the runner flattened them), on the CPU."""
        self._put_inputs(inputs)
        self._command("run", "run")
        return tensor_io.load(self.workdir / "outputs.bin")

    def measure(self, inputs: Sequence[torch.Tensor], config: TimingConfig) -> Measurement:
        """The timing protocol of src/torchparity/timing/timer.py, run inside the runner."""
        self._put_inputs(inputs)
        return measurement(self._command(time_command(config), "timing"))

    def close(self) -> None:
        self._finalizer()


class NativeRunner(RunnerProcess):
    """One C++ runner process serving one artifact on one device."""

    def __init__(
        self,
        binary: Path,
        kind: str,
        artifact: Path,
        device: torch.device,
        threads: int,
        interop_threads: int,
    ) -> None:
        command = [
            str(binary),
            "--kind",
            kind,
            "--artifact",
            str(artifact),
            "--device",
            str(device),
            "--threads",
            str(threads),
            "--interop-threads",
            str(interop_threads),
        ]
        super().__init__(under_callgrind(command), _runner_env(), "native runner")

    def count(self, inputs: Sequence[torch.Tensor], warmup: int, calls: int, slow_s: float) -> int:
        """Instructions counted inside the runner (started under callgrind):
        ``warmup`` calls, then ``calls`` calls collected (one when a warm-up
        call took over ``slow_s``) and dumped; how many calls were counted."""
        self._put_inputs(inputs)
        return int(self._command(f"count {warmup} {calls} {slow_s!r}", "count")["calls"])
