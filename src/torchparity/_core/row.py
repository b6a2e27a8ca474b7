"""The row: the typed record of one cell's result (DESIGN.md's columns).

Rows stay plain dicts at run time (pandas, JSON and plugins read them as such);
``Row`` declares every column torchparity writes, so a misspelled one is caught:
statically (a type checker rejects an undeclared key) and at the writer
(``check_declared``, which raises in strict mode: the test suite turns it on).
What a plugin adds goes in a namespace (``COLUMN_NAMESPACES``: ``backend_*`` for a
backend's notes, ``plugin_*`` for anything else); a new built-in column is
declared here. ``validate`` is the boundary check for rows read from disk, so a
results.jsonl of the wrong shape gives one clear error, never a traceback deep
inside a renderer. ``encode``/``decode`` are the JSON form (inf and NaN as
strings, since JSON has neither).
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypedDict, get_type_hints

import pandas as pd

from torchparity._core.status import STATUSES


class Row(TypedDict, total=False):
    # the cell
    case: str
    kind: str
    suite: str
    device: str
    precision: str
    backend: str
    mode: str
    cell_id: str
    runtime_language: str  # the language the backend's runtime is called from
    effective_precision: str  # the precision that ran (the cell's unless the backend says)
    # the verdict
    status: str
    reason: str
    error_type: str  # an error row's exception type, and the stage that raised it
    error_stage: str
    traceback: str
    error_file: str  # the full text of fields cut to fit the row (RunDir.bounded)
    exit_code: int | None  # a crashed worker's
    machine_fault: str  # a full or read-only disk, said in words (blamed on the environment)
    xfail_of: str  # the status an expected failure had before the expectation marked it
    expectation: str  # expected, changed, unexpected pass, new failure, ...
    expected_status: str
    blame: str  # DESIGN.md's blame vocabulary, and where the blame came from
    blame_source: str
    test: str  # the pytest plugin's test id
    # timing (timing/measurement.py, timing/rounds.py, _core/stats.py)
    batch: int
    sweep_batch: int  # a --batch sweep's size
    latency_ms_median: float
    latency_ms_iqr: float
    latency_ms_p90: float
    latency_ms_p99: float
    latency_cv: float
    latency_round_spread: float
    outliers: int
    iterations: int
    repeats: int
    number_per_repeat: int
    warmup_calls: int
    throughput_items_s: float
    prepare_s: float
    samples_ms: list
    rounds: int
    round_medians_ms: list
    samples_per_round: list
    rounds_note: str
    timing_partial: bool  # TIMING_PARTIAL
    rounds_planned: int  # ROUNDS_PLANNED
    calibration_ms: float
    calibration_round_ms: list
    speedup_vs_eager: float
    speedup_ci_low: float
    speedup_ci_high: float
    speedup_pairs: int
    torch_threads: int
    torch_interop_threads: int
    peak_mem_mb: float | None
    peak_mem_method: str | None
    instructions_per_call: float
    instructions_calls: int
    instructions_method: str
    instructions_s: float
    instructions_skip_reason: str
    # drift (verdicts/drift.py)
    max_abs_err: float
    max_rel_err: float
    max_ulp: float
    max_pointwise_rel_err: float
    max_pointwise_ulp: float
    rel_l2: float
    nonfinite_mismatches: int
    cosine: float
    mismatch_frac: float
    atol: float
    rtol: float
    tolerance_used: float
    drift_policy: str
    eager_max_abs_diff: float
    output_digest: str
    output_dtype: str
    output_file: str
    output_store_error: str
    input_digest: str
    reference_cache: str
    behaviour_fingerprint: str
    nondeterministic: str  # why two fp64 calls of the case differ (the case's blame)
    mutates_inputs: list  # the inputs the backend changed in place
    leaf_names: list
    leaves: list
    missing_leaves: list
    dropped_leaves: list
    # int8 (verdicts/quantized.py, backends/quantize.py)
    int8_failed: str
    int8_leaves: list
    fidelity_step: float
    fidelity_step_source: str
    fidelity_max_steps: float | None
    fidelity_mean_steps: float | None
    fidelity_bound_max_steps: float
    fidelity_bound_mean_steps: float
    agree_cosine: float | None
    agree_min_cosine: float
    agree_sqnr_db: float | None
    agree_min_sqnr_db: float
    agree_top1: float | None
    agree_min_top1: float
    agree_top5: float | None
    agree_min_top5: float
    agree_exact: float | None
    agree_min_exact: float
    quant_reference_agrees: Any
    quant_mode: str
    quant_quantizer: str
    quant_activations: str
    quant_weights: str
    quant_act_observer: str
    quant_weight_observer: str
    quant_calibration_batches: int
    quant_calibration_draws: str
    # training (cell/training.py, verdicts/train_drift.py)
    optimizer: str
    steps: int
    steps_per_s: float
    first_step_ms: float
    losses: list
    reference_losses: list
    loss_first: float
    loss_last: float
    reference_loss_last: float
    loss_max_rel_err: float
    loss_bound: float
    grad_rel_err: float
    grad_bound: float
    update_rel_err: float
    update_bound: float
    param_rel_err: float
    worst_grad_tensor: str
    worst_update_tensor: str
    amp_scale_final: float  # amp-fp16 training's GradScaler
    amp_unscaled: bool
    amp_skipped_steps: int
    ddp_world_size: int  # the ddp backend (backends/ddp.py)
    ddp_backend: str
    ddp_ranks_agree: bool
    ddp_rank_param_spread: float
    ddp_startup_s: float
    ddp_wall_s: float
    allreduce_overhead_ms: float
    allreduce_overhead_frac: float
    # multi-sample cells (cell/multisample.py)
    samples: int
    samples_invalid: int
    samples_pass: int
    samples_fail: int
    samples_error: int
    worst_sample: int
    worst_sample_label: str
    worst_sample_file: str
    reproducer: str
    # shape mode (docs/shapes.md): sizes as "batch=4,seq=16", the outcome
    shape_point: str
    export_shape: str
    run_shape: str
    shape_outcome: str  # match, loud-error, silent-mismatch, silent-static
    export_input_shapes: str
    run_input_shapes: str
    run_error: str
    artifact_reused: bool
    shapes_tried: int
    fuzz_s: float
    # localization (diagnose/after.py)
    culprit: str
    localization_file: str
    localize_s: float
    localize_error: str
    localize_traceback: str
    # fuzz (fuzz/properties.py)
    profile: str
    examples: int
    signatures: int
    prepared: int
    cache_hits: int
    time_budget_s: float
    wall_s: float
    check: str
    # the data loader's rows (run/data_throughput.py)
    num_workers: int
    pin_memory: bool
    pin_memory_effective: bool
    persistent_workers: bool
    start_method: str
    samples_s: float
    first_batch_s: float | None
    elapsed_s: float
    peak_rss_mb: float
    epochs: int
    data_checksum: float
    # generation and serving (declared for the paths being added; docs/measurement.md)
    tokens_agree: Any
    first_divergent_step: int | None
    tie_flips: int | None
    ttft_ms: float | None
    tpot_ms_p50: float | None
    tpot_ms_p99: float | None
    tokens_s: float | None
    decode_input_len: int | None
    cache_kind: str
    max_new_tokens: int
    prompt_len: int
    margin_min: float  # the fp64 reference's top-1/top-2 logit margins (decisiveness)
    margin_p10: float
    margin_p50: float
    tf_bound: float  # teacher forcing: the bound, the worst step and its error
    tf_worst_step: int
    tf_worst_rel_l2: float
    tie_detail: str
    tie_margin: float
    incremental_rel_l2: float  # prefill vs one-token-at-a-time, the path's and the model's own
    model_incremental_rel_l2: float
    generation_file: str
    incremental_check: str
    localize_note: str  # why a generate cell was not localized
    generation_culprit: str  # the verdict's culprit when a layer is the localizer's
    timed_loops: int
    scenario: str
    qps: float | None
    loadgen_valid: Any
    responses_differ: Any
    batch_invariant: Any
    # environment, repeated so merged CSVs stay self-describing
    os: str
    torch: str
    onnxruntime: str
    host: str
    run_id: str | None
    finished_at: str
    seed: int  # the input and weight seed of the run
    # the device's facts beyond its namespace (axes/devices.py)
    cudnn_benchmark: bool
    cudnn_version: int | None
    gpu_name: str | None


# Where columns that are not built in go: a backend's notes (``PrepareContext.notes``,
# written as ``backend_<key>``) and anything else a plugin adds (``plugin_<name>``).
# A device kind's own facts (``Device.configure``, its peak memory) are named after
# it: registering a device declares ``<device>_`` (``declare_namespace``).
COLUMN_NAMESPACES: tuple[str, ...] = ("backend_", "plugin_")
_namespaces: set[str] = set(COLUMN_NAMESPACES)


def declare_namespace(prefix: str) -> None:
    """Accept every column named ``prefix...`` (a device kind's ``<name>_``)."""
    _namespaces.add(prefix)


DECLARED_COLUMNS: frozenset[str] = frozenset(Row.__annotations__)
# Set to 1 (the test suite does), the results writer refuses an undeclared column.
STRICT_COLUMNS_ENV = "TORCHPARITY_STRICT_COLUMNS"


def undeclared_columns(keys: Iterable[str]) -> list[str]:
    """The names among ``keys`` that are neither declared in ``Row`` nor in a namespace."""
    prefixes = tuple(_namespaces)
    return [k for k in keys if k not in DECLARED_COLUMNS and not k.startswith(prefixes)]


def strict_columns() -> bool:
    return os.environ.get(STRICT_COLUMNS_ENV, "") not in ("", "0")


def check_declared(row: Mapping[str, Any], strict: bool | None = None) -> None:
    """``RowError`` naming each undeclared column (and the declared name it is
    closest to), in strict mode (``strict``, else $TORCHPARITY_STRICT_COLUMNS)."""
    if not (strict_columns() if strict is None else strict):
        return
    bad = undeclared_columns(row)
    if bad:
        hints = []
        for name in bad:
            close = difflib.get_close_matches(name, sorted(DECLARED_COLUMNS), n=1)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise RowError(
            f"undeclared row column(s) {', '.join(hints)}: declare it in "
            f"torchparity/_core/row.py's Row, or name it {' or '.join(n + '*' for n in sorted(_namespaces))}"
        )


# The DESIGN.md row contract, in display order; other columns follow.
LEADING_COLUMNS: list[str] = [
    "case",
    "kind",
    "suite",
    "device",
    "precision",
    "backend",
    "mode",
    "runtime_language",
    "effective_precision",
    "status",
    "reason",
    "batch",
    "latency_ms_median",
    "latency_ms_iqr",
    "latency_ms_p90",
    "iterations",
    "throughput_items_s",
    "prepare_s",
    "max_abs_err",
    "max_rel_err",
    "max_ulp",
    "cosine",
    "mismatch_frac",
    "atol",
    "rtol",
    "eager_max_abs_diff",
    "output_digest",
    "os",
    "torch",
    "onnxruntime",
    "host",
]
CELL_COLUMNS: list[str] = ["case", "device", "precision", "backend"]
# The languages a backend's runtime is called from (``Backend.runtime_language``),
# in the order the reports group them; a plugin may name another.
RUNTIME_LANGUAGES: tuple[str, ...] = ("Python", "C++", "JavaScript")
TEXT_COLUMNS = frozenset(
    {
        "case",
        "kind",
        "suite",
        "device",
        "precision",
        "backend",
        "mode",
        "cell_id",
        "runtime_language",
        "effective_precision",
        "status",
        "reason",
        "output_digest",
        "output_dtype",
        "shape_point",
        "export_shape",
        "run_shape",
        "shape_outcome",
    }
)
NUMBER_COLUMNS = frozenset(
    name for name, kind in get_type_hints(Row).items() if kind in (float, int)
)
# Inf and NaN as JSON strings; only numeric columns turn them back into floats,
# so a case named "nan" stays a name.
_KEEP_TEXT = TEXT_COLUMNS | {"leaf_names", "leaf_names_reference"}
_NON_FINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def add_columns(row: Row, columns: Mapping[str, Any]) -> None:
    """Put ``columns`` (a backend's notes, a mode's own measurements) into ``row``."""
    for key, value in columns.items():
        row[key] = value


class RowError(ValueError):
    """A row read from disk that does not have the row's shape."""


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _restore(value: Any) -> Any:
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    if isinstance(value, list):
        return [_restore(v) for v in value]
    if isinstance(value, dict):
        return {k: _restore(v) for k, v in value.items()}
    return value


def encode(row: Mapping[str, Any]) -> str:
    """One JSON line (no newline) for ``row``."""
    return json.dumps(_clean(dict(row)), default=_json_default, ensure_ascii=False)


def decode(obj: Any) -> dict[str, Any]:
    """A row from parsed JSON, "nan"/"inf" turned back into floats except in
    text columns (a case may be named "nan"); ``RowError`` when it is not a row.
    A plain dict: a row read from disk may hold columns this version does not declare."""
    row = validate(obj)
    return {k: v if k in _KEEP_TEXT else _restore(v) for k, v in row.items()}


def validate(obj: Any) -> dict[str, Any]:
    """``obj`` as a row, after checking the types of the declared columns."""
    if not isinstance(obj, dict):
        raise RowError(f"a row is a JSON object, not {type(obj).__name__}")
    for key in TEXT_COLUMNS & obj.keys():
        if obj[key] is not None and not isinstance(obj[key], str):
            raise RowError(f"column {key!r} must be text, not {type(obj[key]).__name__}")
    for key in NUMBER_COLUMNS & obj.keys():
        value = obj[key]
        ok = value is None or (isinstance(value, int | float) and not isinstance(value, bool))
        if not ok and not (isinstance(value, str) and value in _NON_FINITE):
            raise RowError(f"column {key!r} must be a number, not {type(value).__name__}")
    if "status" in obj and obj["status"] not in STATUSES:
        raise RowError(f"unknown status {obj['status']!r} (valid: {', '.join(STATUSES)})")
    return dict(obj)


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Flat columns only (lists and dicts stay in the JSONL), contract columns first."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=LEADING_COLUMNS)
    nested = [c for c in frame.columns if frame[c].map(lambda v: isinstance(v, list | dict)).any()]
    frame = frame.drop(columns=nested + [c for c in ("traceback",) if c in frame.columns])
    for col in LEADING_COLUMNS:
        if col not in frame.columns:
            frame[col] = None
    rest = [c for c in frame.columns if c not in LEADING_COLUMNS]
    return frame.reindex(columns=LEADING_COLUMNS + rest)  # every column exists: a reorder


# A row whose timing has rounds still to come: its verdict is final, its timing
# columns cover the rounds finished so far (an interrupted run; `--resume`
# finishes them and writes the cell's row again, which supersedes this one).
TIMING_PARTIAL = "timing_partial"
ROUNDS_PLANNED = "rounds_planned"


def timing_partial(row: Mapping[str, Any]) -> bool:
    return row.get(TIMING_PARTIAL) is True


def partial_timing_note(rows: Sequence[Mapping[str, Any]], limit: int = 10) -> str | None:
    """One line naming the cells whose timing is partial, or None when none is."""
    partial = [r for r in rows if timing_partial(r)]
    if not partial:
        return None
    names = ", ".join(
        f"{cell_key(r)} ({r.get('rounds', '?')} of {r.get(ROUNDS_PLANNED, '?')} rounds)"
        for r in partial[:limit]
    )
    more = f" and {len(partial) - limit} more" if len(partial) > limit else ""
    return (
        f"timing partial for {len(partial)} cell(s) of an interrupted run (verdicts final; "
        f"`torchparity run --resume` finishes them): {names}{more}"
    )


def cell_key(row: Mapping[str, Any]) -> str:
    """The row's cell identity (``cell_id`` when present)."""
    return str(row.get("cell_id") or "|".join(str(row.get(c)) for c in CELL_COLUMNS))


__all__ = [
    "Row",
    "COLUMN_NAMESPACES",
    "DECLARED_COLUMNS",
    "STRICT_COLUMNS_ENV",
    "declare_namespace",
    "undeclared_columns",
    "strict_columns",
    "check_declared",
    "add_columns",
    "RowError",
    "LEADING_COLUMNS",
    "CELL_COLUMNS",
    "RUNTIME_LANGUAGES",
    "encode",
    "decode",
    "validate",
    "rows_frame",
    "cell_key",
    "TIMING_PARTIAL",
    "ROUNDS_PLANNED",
    "timing_partial",
    "partial_timing_note",
]
