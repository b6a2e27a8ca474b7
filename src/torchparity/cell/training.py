"""Train cells: N optimizer steps from the case's deterministic weights on
deterministic batches, compared with the same training in fp64 eager on CPU.

A train cell runs these stages through the one runner (cell/stages.py):

    precheck -> reference -> train -> compare -> timing

The module is the case's in train mode with dropout probabilities set to 0
(dropout's random masks differ between backends by design; BatchNorm trains
on batch statistics as usual).
- reference: the same loop in fp64 on CPU with the optimizer's plain
  (for-loop) implementation, cached in memory per case;
- train: the backend's differentiable forward (``Backend.train_forward``) or
  its own loop (``Backend.run_training``: ddp), N steps of forward, loss,
  backward (through a GradScaler for amp-fp16), optimizer step;
- compare: losses at every step, first-step gradients, parameter updates
  (verdicts/train_drift.py, docs/training.md);
- timing: further steps for ``--min-time``: step latency, steps/s, items/s;
  the first step's excess over a steady step (compilation) goes to prepare_s.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torchparity._core import stats
from torchparity._core.row import Row, add_columns
from torchparity._core.status import Status
from torchparity.backends.base import Backend
from torchparity.cell.stages import CellRun, Stages, check_precheck
from torchparity.train_loop import (
    Trainer,
    TrainJob,
    TrainTrace,
    reference_training,
    sensitivity,
    spec_of,
    trainable_module,
)
from torchparity.verdicts.train_drift import compare_training


@dataclass
class TrainState(CellRun):
    """What the train stages hand each other; each field is set by the stage named beside it."""

    row: Row = field(default_factory=lambda: Row(status=Status.PASS, reason="", mode="train"))
    reference: TrainTrace = field(init=False, repr=False)  # reference
    kappa: dict[str, Any] = field(default_factory=dict)  # reference: the case's sensitivity
    job: TrainJob = field(init=False, repr=False)  # train
    trace: TrainTrace = field(init=False, repr=False)  # train


def train_in_process(
    job: TrainJob, backend: Backend, configure: Callable[[Trainer], None] | None = None
) -> TrainTrace:
    """The in-process loop over the backend's differentiable forward;
    ``configure`` may adjust the trainer (its optimizer) before the first step."""
    tdev = job.device.torch_device()
    module = trainable_module(job.case, job.seed).to(device=tdev, dtype=job.precision.dtype)
    began = time.perf_counter()
    forward = backend.train_forward(module, (), job.ctx)
    prepare_s = time.perf_counter() - began
    trainer = Trainer(job.case, module, forward, job.precision, job.device, job.seed, job.optimizer)
    if configure is not None:
        configure(trainer)
    trace = trainer.run(job.steps)
    trace.timing_s = trainer.time_steps(job.min_time, job.steps)
    # A lazily compiling backend compiles in the first step: its excess over a
    # steady step is compile time.
    trace.prepare_s = prepare_s + max(0.0, trace.step_s[0] - stats.median(trace.timing_s))
    return trace


def _timing_columns(trace: TrainTrace, batch: int) -> dict[str, Any]:
    """One window of optimizer steps: each sample is one step (``stats.latency_columns``)."""
    samples = trace.timing_s or trace.step_s[1:] or trace.step_s
    cols = stats.latency_columns([samples], batch)
    return {
        **cols,
        "steps_per_s": stats.per_second(1, stats.median(samples)),
        "first_step_ms": trace.step_s[0] * 1e3,
        "prepare_s": trace.prepare_s,
    }


def stage_precheck(s: TrainState) -> bool:
    if not check_precheck(s):
        return False
    case, train = s.ctx.case, s.ctx.train
    s.row["batch"], s.row["steps"] = case.batch, train.steps
    s.row["optimizer"] = (
        "case" if spec_of(case).optimizer or spec_of(case).lightning else train.optimizer
    )
    add_columns(s.row, s.ctx.configure_device())
    return True


def stage_reference(s: TrainState) -> bool:
    """The fp64 training on the CPU and how much it moves under perturbation."""
    case, train = s.ctx.case, s.ctx.train
    s.reference = reference_training(case, s.ctx.seed, train.steps, train.optimizer)
    s.kappa = sensitivity(case, s.ctx.seed, train.steps, train.optimizer)
    return True


def stage_train(s: TrainState) -> bool:
    """The backend's own loop (ddp) or the in-process loop over its forward."""
    train = s.ctx.train
    s.job = TrainJob(
        s.ctx.prepare_context(s.ctx.case.name, "train", None),
        s.ctx.case,
        s.ctx.seed,
        train.steps,
        train.optimizer,
        s.settings.timing.min_time,
    )
    s.trace = s.ctx.backend.run_training(s.job) or train_in_process(s.job, s.ctx.backend)
    return True


def stage_compare(s: TrainState) -> bool:
    """Losses at every step, first-step gradients and updates against the reference."""
    trace, ref, precision = s.trace, s.reference, s.ctx.precision
    add_columns(s.row, s.job.ctx.row_columns())
    problems, known = trace.columns.pop("_problems", []), trace.columns.pop("_known", None)
    add_columns(s.row, trace.columns)
    add_columns(
        s.row,
        {
            "losses": trace.losses,
            "reference_losses": ref.losses,
            "loss_first": trace.losses[0],
            "loss_last": trace.losses[-1],
            "reference_loss_last": ref.losses[-1],
        },
    )
    drift = compare_training(
        trace.losses,
        ref.losses,
        ref.names,
        trace.grads,
        ref.grads,
        trace.params0,
        trace.params,
        ref.params0,
        ref.params,
        precision.compute_dtype,
        s.kappa,
        precision.dtype,
    )
    add_columns(s.row, drift.columns())
    drift.problems.extend(problems)
    if not drift.passed:
        skipped = trace.columns.get("amp_skipped_steps")
        note = f" ({skipped} of {s.job.steps} steps skipped by the GradScaler)" if skipped else ""
        s.row.update(status=Status.FAIL, reason=drift.reason + note)
        if known:  # a divergence the backend explains (ddp with BatchNorm on CPU)
            was = s.row.get("reason", "")
            s.row.update(status=Status.XFAIL, reason=f"known: {known}; was fail: {was}")
            s.row["xfail_of"] = Status.FAIL.value
    return True


def stage_timing(s: TrainState) -> bool:
    add_columns(s.row, _timing_columns(s.trace, s.ctx.case.batch))
    return True


TRAIN_STAGES: Stages[TrainState] = (
    ("precheck", stage_precheck),
    ("reference", stage_reference),
    ("train", stage_train),
    ("compare", stage_compare),
    ("timing", stage_timing),
)
