"""Blame: which component a non-pass cell points at.

Categories (fixed; the expectations file and the report use these names):
``pytorch`` (eager kernels, TorchScript, dynamo), ``exporter`` (torch.onnx and
onnxscript's translations), ``onnx-spec`` (the ONNX standard cannot express
the op's semantics), ``onnxruntime`` (its kernels and session), ``inductor``
(torch.compile's code generation), ``executorch`` (its lowering, delegates and
runtime), ``openvino`` (its conversion and CPU plugin), ``device`` (the hardware or its runtime),
``harness`` (this suite: its oracle, its input generation, its plumbing: a
Python error such as an AttributeError raised in torchparity's own code), ``case`` (the
case or plugin under test: its module or input factory fails to build, or its
output is vacuous: empty, all zeros, independent of the inputs, or
not reproducible: two fp64 calls on the same input differ),
``litert`` (its converter and interpreter), ``quantization`` (the int8 recipe
itself: the quantized reference fails the same way), ``environment`` (the
machine: a missing optional dependency, a library that cannot load, a full or
read-only disk, no network; ``_core.errors.MachineFault``).

A failure in a stage that runs before any backend is involved (``build``,
``reference``) gets the same blame on every backend: it is the case's, or the
environment's when a library is missing. That includes what eager itself
cannot return at the fp64 reference (no tensor: None, a Python float), and a
worker that crashed or hung while building the case or computing its
reference (run/runner.py: every cell of the case gets that row).

An expectations entry names the blame after review; every other non-pass
row gets the category these rules guess from the backend, the stage and the
message (``blame_source`` says which).
"""

from __future__ import annotations

import re
from typing import Any

from torchparity._core.status import Status

CATEGORIES = (
    "pytorch",
    "exporter",
    "onnx-spec",
    "onnxruntime",
    "inductor",
    "executorch",
    "openvino",
    "litert",
    "quantization",
    "device",
    "harness",
    "case",
    "environment",
)
# Stages that run before any backend is involved: what fails there is the case's.
CASE_STAGES = ("build", "reference")

_ORT = re.compile(
    r"onnxruntime|\bort\b|could not find an implementation|not_implemented|"
    r"runtimeexception|invalid_graph|invalid_argument|fail : |inferenceerror|"
    r"has no \S+ kernel",
    re.I,
)
_INDUCTOR = re.compile(r"inductor|cppcompileerror|c\+\+ compile|lowering|codegen|triton", re.I)
_HARNESS = re.compile(
    r"no literal form|private api|expecttest|not in torch|op_db|opinfo suite "
    r"unavailable|the onnx graph takes \d+ inputs|dtype this suite runs",
    re.I,
)
_EXPORT = re.compile(r"torch\.export|data-dependent|GuardOn|UserError|Unsupported:|dynamo", re.I)
_SKIP_PYTORCH = re.compile(r"has no \S+ kernel on|runs at .* only|no float", re.I)
_ENVIRONMENT = re.compile(
    r"ModuleNotFoundError|ImportError|is not installed|No module named|cannot open shared object|"
    r"DLL load failed|Library not loaded",
    re.I,
)
_ENVIRONMENT_TYPES = ("ModuleNotFoundError", "ImportError", "MachineFault")


def _environment(row: dict[str, Any], reason: str) -> bool:
    """A library that is missing or cannot load, whichever stage met it."""
    if row.get("machine_fault") or row.get("error_type") in _ENVIRONMENT_TYPES:
        return True
    return bool(_ENVIRONMENT.search(reason))


# Python's own errors (a bug, not a refusal), raised in torchparity's own code
# (not a built-in suite's case, not a library it called): a crash of the plumbing.
_PLUMBING_TYPES = (
    "AttributeError",
    "TypeError",
    "KeyError",
    "IndexError",
    "NameError",
    "UnboundLocalError",
)
_FRAME = re.compile(r'^\s*File "([^"]+)", line \d+', re.M)
_OWN_CODE = re.compile(
    r"[/\\]torchparity[/\\](?:(?:_core|axes|backends|cases|cell|cli|diagnose|fuzz|report|run|"
    r"timing|verdicts)[/\\][^/\\]+|[a-z_]+)\.py$"
)


def _plumbing(row: dict[str, Any]) -> bool:
    """The error is Python's own (``_PLUMBING_TYPES``) and its innermost frame
    is in torchparity's code: e.g. a backend's call handling a list input as a tensor."""
    if row.get("error_type") not in _PLUMBING_TYPES:
        return False
    frames = _FRAME.findall(str(row.get("traceback") or ""))
    return bool(frames) and bool(_OWN_CODE.search(frames[-1]))


def _case_stage(row: dict[str, Any]) -> bool:
    """Built or referenced before any backend was involved, or an output judged
    vacuous (empty, constant). A leaf count that differs at the call is not
    here: a graph that lost an output may be the exporter's doing."""
    stage = row.get("error_stage")
    vacuous = row.get("error_type") == "NothingToCompare" and stage != "call"
    return stage in CASE_STAGES or vacuous


def classify(backend: str, row: dict[str, Any]) -> str:
    """The guessed blame of a non-pass row on ``backend``."""
    status = row.get("xfail_of") or row.get("status")
    reason = str(row.get("reason") or "")
    if row.get("nondeterministic"):
        return "case"  # eager at fp64 does not reproduce itself: no backend is to blame
    if status != Status.SKIP and _environment(row, reason):
        return "environment"
    if status != Status.SKIP and _case_stage(row):
        return "case"
    if status != Status.SKIP and _plumbing(row):
        return "harness"  # torchparity's own code broke on the input it was handed
    if _HARNESS.search(reason):
        return "harness"
    if status == Status.FAIL and _recipe_loses_task(row):
        return "quantization"
    if status == Status.SKIP:
        if re.search(r"is not installed|no module named|does not load beside", reason, re.I):
            return "environment"
        if _SKIP_PYTORCH.search(reason):
            return "pytorch"  # the op has no kernel for the dtype: a property of the op
        if re.search(r"^(cuda|mps|cpu)\b|not available|no .*execution provider", reason, re.I):
            return "device"
        return "harness"
    if backend.startswith("torchscript") and "[_op(" in reason:
        return "harness"  # the suite's Python wrapper of the op (e.g. OpInfo's lambda), not a torch API
    if backend.startswith("onnxruntime"):
        if _ORT.search(reason) or (status == Status.FAIL and _runner_off(row)):
            return "onnxruntime"
        return "exporter"  # export, conversion, checker; and graphs computing other values
    if backend in ("executorch", "openvino"):
        if _EXPORT.search(reason):
            return "pytorch"  # torch.export, before the runtime's lowering or conversion
        return backend
    if backend in ("compile", "aoti", "aoti-cpp"):
        if status in (Status.FAIL, Status.TIMEOUT, Status.CRASH) or _INDUCTOR.search(reason):
            return "inductor"  # wrong values, or code generation and C++ compilation running away
        return "pytorch"  # dynamo tracing, fake tensors, decompositions
    return "pytorch"  # eager, TorchScript, torch.export


def _recipe_loses_task(row: dict[str, Any]) -> bool:
    """An int8 cell that fails agreement with fp32 alone (its fidelity to the
    quantized reference holds), while the quantized reference itself, eager
    at int8, fails agreement too: the recipe, not the runtime, lost the task."""
    if "output dtype" in str(row.get("reason") or ""):
        return False  # the path also returned another dtype: that is the path's
    return row.get("int8_failed") == "agreement" and row.get("quant_reference_agrees") is False


def _runner_off(row: dict[str, Any]) -> bool:
    """A Node or browser runner's numbers are further from Python ONNX
    Runtime's on the same .onnx file than half their distance from eager:
    the runtime's own kernels (wasm, its JavaScript build), not the graph."""
    to_python = row.get("backend_python_max_abs_diff")
    to_eager = row.get("eager_max_abs_diff")
    if not isinstance(to_python, (int, float)) or not isinstance(to_eager, (int, float)):
        return False
    return to_eager > 0 and to_python > 0.5 * to_eager
