"""Generate cells (``--mode generate``; docs/generation.md): does the deployed
model generate the fp64 reference's tokens, and how fast?

A generate cell is (case, device, precision, backend, batch). The harness
owns the greedy loop (cell/greedy.py); the backend's generation path owns its
cache (backends/generation.py). Stages, on the one runner (cell/stages.py):

    precheck -> build -> reference -> prepare -> call -> compare -> timing

- build: the case's generating module and prompts (cases/generation.py);
- reference: the loop over fp64 eager's cache path on CPU, and its own
  prefill-versus-incremental check (memoized per process);
- prepare: the backend's ``prepare_generation`` at the cell's precision;
  a path that recomputes its prefix (``decode_input_len`` > 1) is a skip;
- call: the free-running greedy loop, the teacher-forced loop, and one full
  prefill of the prompt and the reference's tokens;
- compare: verdicts/generation.py ``judge``; per-prompt detail to
  ``generation/`` in the run directory;
- timing: more free-running loops: TTFT, TPOT p50/p99, decode tokens/s.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from typing import Any

import torch

from torchparity._core import stats
from torchparity._core.errors import first_line
from torchparity._core.row import add_columns
from torchparity._core.rundir import RunDir
from torchparity._core.status import Status
from torchparity.axes.devices import get_device
from torchparity.axes.precision import get_precision
from torchparity.backends import get_backend
from torchparity.backends.base import PrepareContext
from torchparity.backends.generation import Prompts, PromptsUnservable, decode_input_len
from torchparity.cases.cache_keys import case_fingerprint
from torchparity.cases.generation import (
    Generation,
    generation_module,
    generation_of,
    make_prompts,
)
from torchparity.cases.inputs import tensor_digest
from torchparity.cell.greedy import LoopRun, full_logits, run_loop
from torchparity.cell.stages import CellRun, Stages, check_precheck
from torchparity.verdicts import drift as drift_mod
from torchparity.verdicts import generation as verdict_mod

# Timed loops after the verdict's: at least this many, more while under the run's min time.
MIN_TIMED_LOOPS, MAX_TIMED_LOOPS = 2, 20


@dataclass
class GenerateReference:
    """The fp64 reference: its greedy run, and its full-prefill logits (the check)."""

    run: LoopRun
    full: torch.Tensor | None
    error: str = ""  # why no verdict can rest on it ("" when it can)


@dataclass
class GenerateState(CellRun):
    """What the generate stages hand each other."""

    spec: Generation = field(init=False, repr=False)  # build
    steps: int = 0  # build: max_new_tokens
    prompts: Prompts = field(init=False, repr=False)  # build: CPU
    module: torch.nn.Module = field(init=False, repr=False)  # build
    reference: GenerateReference = field(init=False, repr=False)  # reference
    path: Any = None  # prepare
    prepare_ctx: PrepareContext = field(init=False, repr=False)  # prepare
    free: LoopRun = field(init=False, repr=False)  # call
    forced: LoopRun = field(init=False, repr=False)  # call
    path_full: torch.Tensor | None = None  # call
    verdict: verdict_mod.GenerationVerdict | None = None  # compare

    @property
    def batch(self) -> int:
        return self.cell.sweep_batch or self.spec.batch

    def device_prompts(self) -> Prompts:
        return self.prompts.to(self.ctx.device.torch_device(), self.ctx.precision.dtype)


def stage_generate_precheck(s: GenerateState) -> bool:
    if not check_precheck(s):
        return False
    s.row["mode"] = "generate"
    return True


def batch_spec(spec: Generation, batch: int) -> Generation:
    """The declaration at ``batch`` prompts: its prompt lengths, cycled (batch
    1: the first, longest prompt alone)."""
    lengths = tuple(spec.prompt_lengths[i % spec.batch] for i in range(batch))
    return replace(spec, prompt_lengths=lengths)


def stage_generate_build(s: GenerateState) -> bool:
    case = s.ctx.case
    declared = generation_of(case.extra)
    assert declared is not None  # precheck refused the others
    s.spec = declared
    s.spec = batch_spec(declared, s.batch)
    s.steps = s.settings.max_new_tokens or declared.max_new_tokens
    s.prompts = make_prompts(s.spec, case.name, s.ctx.seed)
    s.module = generation_module(
        s.spec, case.make_module, case.name, s.ctx.seed, case.reinit_weights
    )
    s.row.update(batch=s.batch, max_new_tokens=s.steps, prompt_len=s.prompts.prompt_len)
    return True


_REFERENCES: dict[tuple, GenerateReference] = {}


def reference_for(s: GenerateState) -> GenerateReference:
    """The fp64 eager greedy loop on CPU over the case's prompts (memoized)."""
    key = (s.cell.case, s.ctx.seed, s.batch, s.steps, case_fingerprint(s.ctx.case, s.module))
    held = _REFERENCES.get(key)
    if held is not None:
        return held
    eager = get_backend("eager")
    model = copy.deepcopy(s.module).to(torch.float64)
    ctx = PrepareContext(cell=s.cell, device=get_device("cpu"), precision=get_precision("fp64"))
    path = eager.prepare_generation(model, s.prompts, s.prompts.prompt_len + s.steps, ctx)
    prompts = s.prompts.to(torch.device("cpu"), torch.float64)
    run = run_loop(path, prompts, s.steps)
    ref = GenerateReference(run, None)
    if not bool(torch.isfinite(run.logits).all()):
        bad = sorted({int(b) for b in (~torch.isfinite(run.logits)).any(-1).nonzero()[:, 1]})
        ref.error = (
            f"the fp64 reference's logits are not finite for prompt(s) {bad} "
            f"(left-padded: {s.prompts.attention_mask.eq(0).any(1).tolist()}): "
            "the model computes NaN/inf on its own prompts in eager fp64"
        )
    else:
        ref.full = full_logits(path, prompts, run.tokens)
    _REFERENCES.clear()
    _REFERENCES[key] = ref
    return ref


def stage_generate_reference(s: GenerateState) -> bool:
    s.reference = reference_for(s)
    add_columns(s.row, verdict_mod.margin_summary(s.reference.run.logits))
    if s.reference.error:
        s.row.update(status=Status.ERROR, reason=s.reference.error)
        s.row["error_stage"], s.row["error_type"] = "reference", "NonFiniteReference"
        return False
    return True


def stage_generate_prepare(s: GenerateState) -> bool:
    """The backend's generation path at the cell's precision and device."""
    digest = tensor_digest([s.prompts.input_ids, s.prompts.attention_mask])
    s.prepare_ctx = s.ctx.prepare_context(
        case_fingerprint(s.ctx.case, s.module), digest, s.ctx.artifact_cache
    )
    model = s.ctx.cast_module(s.module).eval()
    began = time.perf_counter()
    with torch.no_grad():
        try:
            s.path = s.ctx.backend.prepare_generation(
                model, s.device_prompts(), s.prompts.prompt_len + s.steps, s.prepare_ctx
            )
        except PromptsUnservable as exc:  # e.g. a static cache and a left-padded batch
            add_columns(s.row, s.prepare_ctx.row_columns())
            s.row.update(status=Status.SKIP, reason=str(exc))
            return False
    s.row["prepare_s"] = time.perf_counter() - began
    add_columns(s.row, s.prepare_ctx.row_columns())
    s.row["cache_kind"] = getattr(s.path, "cache_kind", "")
    s.row["decode_input_len"] = decode_input_len(s.path)
    if s.row["decode_input_len"] > 1:
        s.row.update(
            status=Status.SKIP,
            reason=(
                f"the path recomputes its prefix at every step (decode input length "
                f"{s.row['decode_input_len']}, not 1): no KV cache is used (torchchat #1399)"
            ),
        )
        return False
    return True


def stage_generate_call(s: GenerateState) -> bool:
    """Free-running greedy, teacher-forced on the reference's tokens, and one
    full prefill of the same tokens (a path that cannot prefill that long
    leaves the incremental check unmeasured, and says why)."""
    prompts, sync = s.device_prompts(), s.ctx.device.synchronize
    s.free = run_loop(s.path, prompts, s.steps, sync=sync)
    ref_tokens = s.reference.run.tokens
    s.forced = run_loop(s.path, prompts, s.steps, forced=ref_tokens, sync=sync)
    try:
        s.path_full = full_logits(s.path, prompts, ref_tokens)
    except Exception as exc:  # noqa: BLE001 - a static prefill length is the path's limit
        s.row["incremental_check"] = (
            f"not measured: prefill of {s.steps - 1} more tokens: {first_line(exc)}"
        )
    return True


def stage_generate_compare(s: GenerateState) -> bool:
    bound = drift_mod.model_limit(s.ctx.tolerance, s.ctx.precision.compute_dtype)
    ref = s.reference
    v = verdict_mod.judge(
        ref.run.tokens, ref.run.logits, s.free.tokens, s.forced.logits, bound, ref.full, s.path_full
    )
    s.verdict = v
    add_columns(s.row, v.columns)
    if v.status != Status.PASS:
        s.row.update(status=Status(v.status), reason=v.reason)
        if v.error_stage:
            s.row["error_stage"], s.row["error_type"] = v.error_stage, "IncrementalMismatch"
    elif v.reason:
        s.row["reason"] = v.reason
    _write_detail(s, v)
    return v.status != Status.ERROR


def _write_detail(s: GenerateState, v: verdict_mod.GenerationVerdict) -> None:
    if s.settings.output_dir is None:
        return
    record = {
        "cell_id": s.cell.id,
        "case": s.cell.case,
        "backend": s.cell.backend,
        "precision": s.cell.precision,
        "batch": s.batch,
        "status": v.status,
        "drift": v.drift,
        "margins": verdict_mod.margins(s.reference.run.logits).T.tolist(),
        "prompts": v.prompts,
    }
    path = RunDir(s.settings.output_dir).write_generation(s.cell.id, record)
    s.row["generation_file"] = path.name


def stage_generate_timing(s: GenerateState) -> bool:
    """More free-running loops (the verdict's was the warm-up): time to first
    token, time per output token (p50, p99) and decode tokens/s."""
    prompts, sync = s.device_prompts(), s.ctx.device.synchronize
    runs: list[LoopRun] = []
    began = time.perf_counter()
    while len(runs) < MAX_TIMED_LOOPS and (
        len(runs) < MIN_TIMED_LOOPS or time.perf_counter() - began < s.settings.timing.min_time
    ):
        runs.append(run_loop(s.path, prompts, s.steps, sync=sync))
    add_columns(s.row, speed_columns(runs, s.batch))
    return True


def speed_columns(runs: list[LoopRun], batch: int) -> dict[str, Any]:
    """``ttft_ms`` (median prefill), ``tpot_ms_p50``/``_p99`` (every decode call
    pooled), ``tokens_s`` (decode tokens per second at the median TPOT)."""
    out: dict[str, Any] = {"ttft_ms": stats.median([r.prefill_s for r in runs]) * 1e3}
    decode = [t for r in runs for t in r.decode_s]
    if decode:  # a loop path times its loop whole: no per-token times
        p50 = stats.quantile(decode, 0.5)
        out.update(
            tpot_ms_p50=p50 * 1e3,
            tpot_ms_p99=stats.quantile(decode, 0.99) * 1e3,
            tokens_s=stats.per_second(batch, p50),
        )
    out["timed_loops"] = len(runs)
    return out


GENERATE_STAGES: Stages[GenerateState] = (
    ("precheck", stage_generate_precheck),
    ("build", stage_generate_build),
    ("reference", stage_generate_reference),
    ("prepare", stage_generate_prepare),
    ("call", stage_generate_call),
    ("compare", stage_generate_compare),
    ("timing", stage_generate_timing),
)
