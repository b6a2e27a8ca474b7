"""Executors: where cells run. ``IsolatedExecutor`` runs tasks (a cell, or a
group's verdict or timing round, see ``warm_cells``) in a worker process
(spawn start method, the same on Linux, macOS and Windows) so a segfault,
abort or hang costs its task, not the run; ``InProcessExecutor`` runs them
here (debugging, fuzzing). Either keeps the group's prepared cells warm
between tasks."""

from __future__ import annotations

import contextlib
import faulthandler
import multiprocessing as mp
import os
import signal
import sys
import threading
import warnings
from multiprocessing.connection import Connection
from typing import Any

from torchparity._core.console import robust_standard_streams
from torchparity._core.rundir import RunDir, RunDirError, start_log_cap
from torchparity._core.status import Status
from torchparity.cases.case import PluginSpec, load_all
from torchparity.cell.context import RunSettings, apply_thread_settings
from torchparity.cell.stages import listen_to_stages
from torchparity.run.warm_cells import WarmCells


def quiet_warnings() -> None:
    """TorchScript and exporter deprecation chatter would drown the output."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*TorchScript.*")
    warnings.filterwarnings("ignore", message=".*torch.jit.*")


def output_to_worker_log(settings: RunSettings) -> None:
    """Send this process's stdout and stderr, at the file-descriptor level so
    C++ prints and IR dumps go too, to the run directory's worker.log: a
    library's walls of warnings belong in a log, not on the user's console
    (the parent's progress line). Without a run directory, nothing changes."""
    if settings.output_dir is None:
        return

    try:
        fd = RunDir(settings.output_dir).open_worker_log()  # inside the run directory only
    except (OSError, RunDirError):
        return  # an unwritable run directory fails later, with a clearer message
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.write(2, f"-- worker {os.getpid()} started\n".encode())
    start_log_cap(RunDir(settings.output_dir).worker_log)  # a model printing without end


def _end_own_group() -> None:
    """Kill this worker and what it started (its process group, POSIX)."""
    if hasattr(os, "killpg"):
        with contextlib.suppress(OSError):
            os.killpg(os.getpgrp(), signal.SIGKILL)
    os._exit(1)


def exit_with_parent() -> None:
    """A thread that ends this worker when the run that started it is gone
    (kill -9 of the run): its own process group is out of reach of a signal
    to the run's group, and it must not keep timing for no one."""
    parent = mp.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()  # waits on the parent's sentinel: returns when the parent exits
        _end_own_group()

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


WHERE_BYTES = 512  # the shared buffer naming the cell and stage a worker runs


def _mirror_stages(where: Any) -> None:
    """Keep "cell id<TAB>stage" in the shared buffer ``where`` as stages start,
    so the parent can name the stage a crash or hang happened in."""

    def write(at: tuple[str, str] | None) -> None:
        text = "\t".join(at) if at else ""
        where.value = text.encode("utf-8", "replace")[: WHERE_BYTES - 1]

    listen_to_stages(write)


def _worker_main(
    conn: Connection, plugins: list[PluginSpec], settings: RunSettings, where: Any = None
) -> None:
    if hasattr(os, "setsid"):  # POSIX: a process group of its own, killed whole on timeout
        os.setsid()
    exit_with_parent()
    if where is not None:
        _mirror_stages(where)
    output_to_worker_log(settings)
    faulthandler.enable()  # a segfault's Python stack goes to worker.log
    quiet_warnings()
    robust_standard_streams()  # a model printing non-ASCII on a cp1252 console is not an error
    apply_thread_settings(settings)
    load_all(plugins)
    warm = WarmCells(settings)
    conn.send("ready")
    while True:
        try:
            task = conn.recv()
        except EOFError:
            return
        if task is None:
            return
        conn.send(warm.handle(task))


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "worker did not exit"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"worker killed by {name} (exit code {code})"
    if code > 0xFFFF:  # Windows NTSTATUS, e.g. 0xC0000005 access violation
        return f"worker crashed with status 0x{code:08X}"
    return f"worker exited with code {code}"


def _kill_group(pid: int | None) -> None:
    """Kill the worker's process group (POSIX; on Windows the worker's children
    outlive it: docs/security.md)."""
    if pid is not None and hasattr(os, "killpg"):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)


class InProcessExecutor:
    """Runs cells in this process: no isolation, no timeout."""

    def __init__(self, plugins: list[PluginSpec], settings: RunSettings) -> None:
        apply_thread_settings(settings)
        load_all(plugins)
        self.settings = settings
        self.warm = WarmCells(settings)

    def run(self, task: Any, timeout: float | None = None) -> Any:
        return self.warm.handle(task)

    def died_in(self) -> tuple[str, str] | None:
        return None  # a crash here ends the run: no row to attribute

    def close(self, kill: bool = False) -> None:
        pass


class IsolatedExecutor:
    """One worker process at a time (cells are timed alone); replaced after a
    crash or timeout."""

    def __init__(self, plugins: list[PluginSpec], settings: RunSettings, timeout: float) -> None:
        self.plugins = plugins
        self.settings = settings
        self.timeout = timeout
        self._ctx = mp.get_context("spawn")
        self._proc: Any = None
        self._conn: Connection | None = None
        # The cell and stage the worker is in (written by it, read after it died).
        self._where: Any = self._ctx.Array("c", WHERE_BYTES, lock=False)
        self._died_in: tuple[str, str] | None = None

    def died_in(self) -> tuple[str, str] | None:
        """(cell id, stage) the worker was running when the last task's worker
        crashed or hung; None when it died between stages, or did not die."""
        return self._died_in

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._where.value = b""
        self._proc = self._ctx.Process(
            target=_worker_main,
            args=(child, self.plugins, self.settings, self._where),
            daemon=True,
        )
        self._proc.start()
        child.close()
        self._conn = parent
        # Start-up (importing torch, loading plugins) is not the cell's time.
        if not parent.poll(max(self.timeout, 120.0)) or parent.recv() != "ready":
            raise RuntimeError("worker process failed to start")

    def _discard(self, kill: bool) -> int | None:
        proc, conn = self._proc, self._conn
        self._proc = self._conn = None
        if proc is None:
            return None
        if kill and proc.is_alive():
            proc.kill()
        proc.join(10)
        _kill_group(proc.pid)  # what the cell started (a subprocess, a server) goes too
        if conn is not None:
            conn.close()
        return proc.exitcode

    def run(self, task: Any, timeout: float | None = None) -> Any:
        """The task's answer; a ``crash`` or ``timeout`` row (a dict with a
        ``status``) when the worker died or took longer than ``timeout``
        (default: the executor's)."""
        timeout = self.timeout if timeout is None else timeout
        self._died_in = None
        try:
            if self._proc is None or not self._proc.is_alive():
                self._discard(kill=True)
                self._start()
            assert self._conn is not None
            self._conn.send(task)
            if self._conn.poll(timeout):
                return self._conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError, RuntimeError):
            code = self._discard(kill=False)
            self._died_in = self._where_now()
            hint = (
                "; its last output is in worker.log" if self.settings.output_dir is not None else ""
            )
            return {
                "status": Status.CRASH.value,
                "reason": _describe_exit(code) + hint,
                "exit_code": code,
            }
        self._discard(kill=True)
        self._died_in = self._where_now()
        return {
            "status": Status.TIMEOUT.value,
            "reason": f"no result within {timeout:g}s; worker killed and replaced",
        }

    def _where_now(self) -> tuple[str, str] | None:
        cell, _, stage = bytes(self._where.value).decode("utf-8", "replace").partition("\t")
        return (cell, stage) if stage else None

    def close(self, kill: bool = False) -> None:
        """Stop the worker: asked to exit, or (``kill``, on an interrupt) killed
        with its process group at once."""
        if kill:
            self._discard(kill=True)
            return
        if self._conn is not None:
            try:
                self._conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        if self._proc is not None:
            self._proc.join(5)
        self._discard(kill=True)
