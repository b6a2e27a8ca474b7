"""DistributedDataParallel: a train cell run by 2 processes, each taking half
of every batch, gradients all-reduced (gloo on CPU; NCCL on CUDA with 2 or
more GPUs, else gloo over CUDA tensors), compared with the single-process fp64
reference like any train cell (docs/training.md).

The ranks are fresh interpreters started with ``subprocess`` (``python -m
torchparity.backends.ddp_rank``), not multiprocessing children: the same on
Linux, macOS and Windows, and allowed inside the run's daemonic worker. They
meet on a free TCP port of 127.0.0.1, rebuild the case from its registration
(the run's plugins are passed on), and write their results as tensors into a
temporary directory this process created and reads back with
``torch.load(weights_only=True)``.

Row columns: ``ddp_world_size``, ``ddp_backend``, ``ddp_ranks_agree`` (the
ranks' parameters after training are bit-identical), ``allreduce_overhead_ms``
(median step with gradient sync minus median step under ``no_sync``) and
``ddp_startup_s`` (process start to the wrapped model, in ``prepare_s``).
Inference cells are skipped: DDP is a training wrapper.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from torchparity._core import stats
from torchparity.axes.matrix import Cell
from torchparity.axes.precision import Precision
from torchparity.backends.base import Backend, PrepareContext
from torchparity.train_loop import TrainJob, TrainTrace

WORLD_SIZE = 2
RANK_TIMEOUT_S = 600.0
TIMED_STEPS = 5  # per mode (sync, no_sync): a fixed count keeps the ranks in lockstep


def free_port() -> int:
    """A TCP port of 127.0.0.1 free right now (bound to 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child_env() -> dict[str, str]:
    # The ranks import the harness and the run's plugins as this process does.
    path = os.pathsep.join(p for p in sys.path if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}


class DDPBackend(Backend):
    name = "ddp"
    description = f"DistributedDataParallel training, {WORLD_SIZE} processes (train cells only)"
    supports_autocast = True
    trains = True

    def supports(self, cell: Cell, precision: Precision) -> str | None:
        return None if cell.mode == "train" else "ddp trains only: run it with --mode train"

    def train_unsupported(self, cell: Cell, precision: Precision) -> str | None:
        from torchparity.cases.case import CASES
        from torchparity.train_loop import spec_of

        case = CASES.get(cell.case)
        if case is not None and case.batch % WORLD_SIZE:
            return f"batch {case.batch} does not split over {WORLD_SIZE} ranks"
        if case is not None and spec_of(case).lightning:
            return (
                "a LightningModule's training_step bypasses the DDP wrapper here; train it on eager"
            )
        return None

    def prepare(
        self, module: torch.nn.Module, example_inputs: tuple, ctx: PrepareContext
    ) -> Callable[..., Any]:
        raise RuntimeError("ddp serves train cells only")

    def configure_ddp(self, ddp: Any, rank: int) -> None:
        """Called in each rank on the wrapped model before training: a plugin
        subclass may register a communication hook (compression, a planted bug)."""

    def run_training(self, job: TrainJob) -> TrainTrace | None:
        from torchparity.cases.case import loaded_plugins

        with tempfile.TemporaryDirectory(prefix="torchparity-ddp-") as tmp:
            out = Path(tmp)
            spec = {
                "case": job.case.name,
                "seed": job.seed,
                "steps": job.steps,
                "optimizer": job.optimizer,
                "precision": job.precision.name,
                "device": job.device.name,
                "world_size": WORLD_SIZE,
                "port": free_port(),
                "plugins": [list(p) for p in loaded_plugins()],
                "timed_steps": TIMED_STEPS,
                "out": str(out),
                "backend": self.name,
            }
            (out / "job.json").write_text(json.dumps(spec), encoding="utf-8")
            began = time.perf_counter()
            self._run_ranks(out)
            wall = time.perf_counter() - began
            return collect(out, wall, job)

    def _run_ranks(self, out: Path) -> None:
        procs = []
        for rank in range(WORLD_SIZE):
            with open(out / f"rank{rank}.err", "w", encoding="utf-8") as err:
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "torchparity.backends.ddp_rank",
                            str(out / "job.json"),
                            str(rank),
                        ],
                        env=_child_env(),
                        stdout=subprocess.DEVNULL,
                        stderr=err,
                    )
                )
        deadline = time.monotonic() + RANK_TIMEOUT_S
        try:
            for proc in procs:
                proc.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"ddp ranks did not finish within {RANK_TIMEOUT_S:g}s") from None
        finally:
            for proc in procs:  # ours, by handle: a rank left behind is killed
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
        for rank, proc in enumerate(procs):
            if proc.returncode != 0:
                err = (
                    (out / f"rank{rank}.err").read_text(encoding="utf-8", errors="replace").strip()
                )
                last = err.splitlines()[-1] if err else f"exit code {proc.returncode}"
                raise RuntimeError(f"ddp rank {rank} failed: {last}")


def collect(out: Path, wall: float, job: TrainJob) -> TrainTrace:
    """Rank 0's trace, with the ranks' agreement and the DDP timing columns."""
    from torchparity.verdicts.train_drift import rel_l2

    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    r0 = ranks[0]
    trace = TrainTrace(
        list(r0["names"]),
        list(r0["losses"]),
        list(r0["grads"]),
        list(r0["params0"]),
        list(r0["params"]),
        list(r0["step_s"]),
        list(r0["sync_s"]),
    )
    spread = max(rel_l2(r["params"], r0["params"]) for r in ranks[1:])
    sync = stats.median(r0["sync_s"])
    overhead = sync - stats.median(r0["no_sync_s"])
    trace.prepare_s = float(r0["startup_s"]) + max(0.0, trace.step_s[0] - sync)
    trace.columns.update(
        ddp_world_size=WORLD_SIZE,
        ddp_backend=str(r0["dist_backend"]),
        ddp_ranks_agree=spread == 0.0,
        ddp_rank_param_spread=spread,
        allreduce_overhead_ms=overhead * 1e3,
        allreduce_overhead_frac=overhead / sync if sync > 0 else 0.0,
        ddp_startup_s=float(r0["startup_s"]),
        ddp_wall_s=wall,
    )
    trace.columns.update({k: v for k, v in r0.get("columns", {}).items()})
    if spread != 0.0:
        trace.columns["_problems"] = [
            f"the ranks' parameters differ after training (relative L2 "
            f"{spread:.3g}): gradients were not all-reduced alike"
        ]
    if r0.get("batchnorm") and job.device.name != "cuda":
        trace.columns["_known"] = (
            "BatchNorm normalizes each rank's half batch, not the whole batch "
            "(SyncBatchNorm needs CUDA), so DDP is not the single-process "
            "computation here"
        )
    return trace


BACKEND = DDPBackend()
