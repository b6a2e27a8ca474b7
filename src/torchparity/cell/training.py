"""Train cells: N optimizer steps from the case's deterministic weights on
deterministic batches, compared with the same training in fp64 eager on CPU.

A train cell runs these stages (the infer pipeline's rules: precheck, error
rows naming the stage, private input copies):

    precheck -> build -> reference -> train -> compare -> timing

- build: the case's module in train mode with dropout probabilities set to 0
  (dropout's random masks differ between backends by design; BatchNorm trains
  on batch statistics as usual);
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
from typing import Any

from torchparity._core import stats
from torchparity._core.status import Status
from torchparity.axes.devices import get_device
from torchparity.axes.matrix import Cell
from torchparity.axes.precision import get_precision
from torchparity.backends import get_backend
from torchparity.backends.base import Backend
from torchparity.cases.case import CASES
from torchparity.train_loop import (
    Trainer,
    TrainJob,
    TrainSettings,
    TrainTrace,
    reference_training,
    sensitivity,
    spec_of,
    trainable_module,
)
from torchparity.verdicts.train_drift import compare_training


def _settings_train(settings: Any) -> TrainSettings:
    return settings.train if isinstance(settings.train, TrainSettings) else TrainSettings()


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


def _train_and_compare(cell: Cell, settings: Any, row: dict[str, Any]) -> None:
    from torchparity.cell.pipeline import prepare_context

    train = _settings_train(settings)
    case, precision = CASES[cell.case], get_precision(cell.precision)
    device, backend = get_device(cell.device), get_backend(cell.backend)
    row.update(
        batch=case.batch,
        steps=train.steps,
        optimizer="case" if spec_of(case).optimizer or spec_of(case).lightning else train.optimizer,
    )
    row.update(device.configure(settings.device_options))
    row["_stage"] = "reference"
    ref = reference_training(case, settings.seed, train.steps, train.optimizer)
    kappa = sensitivity(case, settings.seed, train.steps, train.optimizer)
    row["_stage"] = "train"
    options = settings.backend_options.get(cell.backend, {})
    ctx = prepare_context(cell, device, precision, None, case.name, "train", options, settings.seed)
    job = TrainJob(
        cell,
        case,
        precision,
        device,
        settings.seed,
        train.steps,
        train.optimizer,
        settings.timing.min_time,
        ctx,
    )
    trace = backend.run_training(job) or train_in_process(job, backend)
    row["_stage"] = "compare"
    row.update({f"backend_{k}": v for k, v in ctx.notes.items()})
    problems, known = trace.columns.pop("_problems", []), trace.columns.pop("_known", None)
    row.update(trace.columns)
    row.update(
        losses=trace.losses,
        reference_losses=ref.losses,
        loss_first=trace.losses[0],
        loss_last=trace.losses[-1],
        reference_loss_last=ref.losses[-1],
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
        kappa,
        precision.dtype,
    )
    row.update(drift.columns())
    drift.problems.extend(problems)
    if not drift.passed:
        skipped = trace.columns.get("amp_skipped_steps")
        note = f" ({skipped} of {train.steps} steps skipped by the GradScaler)" if skipped else ""
        row.update(status=Status.FAIL.value, reason=drift.reason + note)
        if known:  # a divergence the backend explains (ddp with BatchNorm on CPU)
            row.update(
                status=Status.XFAIL.value,
                xfail_of=Status.FAIL.value,
                reason=f"known: {known}; was fail: {row['reason']}",
            )
    row["_stage"] = "timing"
    row.update(_timing_columns(trace, case.batch))


def execute_train_cell(cell: Cell, settings: Any) -> dict[str, Any]:
    """One train cell -> its row (without the environment fields); a stage's
    exception becomes an ``error`` row naming the stage."""
    from torchparity._core.errors import error_fields
    from torchparity.cell.pipeline import precheck

    row: dict[str, Any] = {
        "status": Status.PASS.value,
        "reason": "",
        "mode": "train",
        "_stage": "precheck",
    }
    try:
        reason = precheck(cell)
        if reason:
            row.update(status=Status.SKIP.value, reason=reason)
        else:
            _train_and_compare(cell, settings, row)
    except Exception as exc:  # a cell's failure is a finding, not a crash
        row.update(error_fields(exc, row["_stage"]))
    row.pop("_stage", None)
    return row
