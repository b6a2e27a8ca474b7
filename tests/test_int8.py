"""The int8 precisions end to end: the quantized reference (pt2e in eager),
ExecuTorch and ONNX Runtime judged by fidelity (quantization steps) and
agreement (fp32 eager), a planted zero-point fault caught and localized, and
the two verdicts' rules on tensors."""

from __future__ import annotations

import importlib.util
import math

import pandas as pd
import pytest
import torch

from tests.backend_runs import by_cell, explain, run_rows
from tests.helpers import DATA
from tests.test_report import open_headless
from torchparity.axes.precision import INT8_TOLERANCE, int8_tolerance
from torchparity.cases.tolerance import Tolerance
from torchparity.report import charts, report
from torchparity.verdicts import quantized as q

CASES = DATA / "int8_cases.py"
FAULT = DATA / "int8_fault_backend.py"


def _needs_pt2e() -> None:
    for module in ("torchao", "executorch"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (the dev and int8 extras install it)")


# -- the verdicts' rules -------------------------------------------------------------


def test_fidelity_counts_quantization_steps():
    qref = torch.tensor([[0.0, 0.5, 1.0, -0.5, 0.25, 0.75, -0.25, 0.125]], dtype=torch.float64)
    leaf = q.QuantLeaf("y")
    q.fidelity(leaf, qref + 0.1, qref, 0.1, INT8_TOLERANCE)  # a one-step shift everywhere
    assert leaf.step_source == "graph"
    assert leaf.max_steps == pytest.approx(1.0) and leaf.mean_steps == pytest.approx(1.0)
    assert "mean from the quantized reference" in leaf.fidelity_reason
    ok = q.QuantLeaf("y")
    nudged = qref.clone()
    nudged[0, 0] += 0.1  # one element one step off: what other integer kernels do
    q.fidelity(ok, nudged, qref, 0.1, INT8_TOLERANCE)
    assert ok.fidelity_reason == "" and ok.max_steps == pytest.approx(1.0)
    ranged = q.QuantLeaf("y")
    q.fidelity(ranged, qref, qref, None, INT8_TOLERANCE)
    assert ranged.step_source == "range" and ranged.step == pytest.approx(1.5 / 255)
    assert ranged.max_steps == 0.0 and ranged.fidelity_reason == ""


def test_agreement_top_k_cosine_and_sqnr():
    fp32 = torch.tensor([[1.0, 2.0, 0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    swapped = torch.tensor([[2.0, 1.0, 0.0, 0.0, 0.0, 0.0], [3.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    leaf = q.QuantLeaf("logits")
    q.agreement(leaf, swapped, fp32, INT8_TOLERANCE)
    assert leaf.top1 == 0.5 and leaf.top5 == 1.0
    noise = float(((swapped - fp32) ** 2).sum())
    assert leaf.sqnr_db == pytest.approx(10 * math.log10(float((fp32**2).sum()) / noise))
    assert "top-1 agreement 0.5 < 0.75" in leaf.agreement_reason
    same = q.QuantLeaf("logits")
    q.agreement(same, fp32, fp32, INT8_TOLERANCE)
    assert same.cosine == pytest.approx(1.0) and same.sqnr_db == math.inf
    assert same.agreement_reason == ""


def test_verdict_names_what_failed_and_case_budgets_override():
    x = torch.linspace(-1, 1, 20).reshape(2, 10)
    both = q.judge(["y"], [x + 0.5], [x], [x * 0], [0.01], INT8_TOLERANCE)
    assert both.failed == ["fidelity", "agreement"]
    assert both.reason.startswith("fidelity failed: y:") and "; agreement failed: y:" in both.reason
    assert both.columns()["int8_failed"] == "fidelity,agreement"
    merged = int8_tolerance(Tolerance(min_sqnr_db=40.0))
    assert merged.min_sqnr_db == 40.0 and merged.quant_max_steps == INT8_TOLERANCE.quant_max_steps


def test_an_integer_leaf_agrees_exactly_or_not_at_all():
    fp32 = torch.tensor([7, 4, 7, 8, 3, 1, 2, 0, 5, 9])
    int8 = torch.zeros(10, dtype=torch.int64)  # class 0 for every row
    verdict = q.judge(["y"], [int8], [int8], [fp32], [None], INT8_TOLERANCE)
    assert verdict.failed == ["agreement"] and verdict.reference_agreement_failed
    columns = verdict.columns()
    assert columns["agree_exact"] == pytest.approx(0.1) and columns["agree_min_exact"] == 0.9
    assert columns["agree_cosine"] is None and columns["agree_sqnr_db"] is None  # never computed
    assert columns["fidelity_max_steps"] is None and verdict.fidelity_share == 0.0
    lenient = int8_tolerance(Tolerance(min_exact=0.05))  # a case's own bound
    assert q.judge(["y"], [int8], [int8], [fp32], [None], lenient).passed
    assert q.judge(["y"], [fp32], [int8], [fp32], [None], lenient).failed == ["fidelity"]


# -- through the command line ---------------------------------------------------------


def test_int8_quantized_reference_through_the_cli(tmp_path):
    """The quantized reference (eager at int8-static) with its recipe, and a
    skip row where a backend serves no int8."""
    _needs_pt2e()
    rows = run_rows(
        tmp_path / "run",
        *("--case-file", str(CASES), "--suite", "int8", "--case", "int8_classifier"),
        *("--precision", "int8-static", "--backend", "eager,torchscript", "--rounds", "1"),
    )
    cells = by_cell(rows)
    assert len(rows) == 2, explain(rows)
    ref = cells["int8_classifier", "int8-static", "eager"]
    assert ref["status"] == "pass", explain(rows)
    assert ref["quant_mode"] == "static" and "XNNPACKQuantizer" in ref["quant_quantizer"]
    assert "per-channel-symmetric" in ref["quant_weights"]
    assert ref["quant_weight_observer"] == "PerChannelMinMaxObserver"
    assert ref["quant_act_observer"] == "HistogramObserver"
    assert ref["quant_calibration_batches"] == 4
    assert ref["quant_calibration_draws"] == "calibration-0..calibration-3"
    assert ref["fidelity_max_steps"] == 0.0 and ref["eager_max_abs_diff"] == 0.0
    assert ref["fidelity_step_source"] == "graph"  # the last Linear's output is quantized
    assert 20 < ref["agree_sqnr_db"] < 80 and ref["agree_top1"] >= 0.75
    assert ref["max_abs_err"] > 1e-4  # int8 is not fp32: fp64 drift is a fact, not the verdict
    skip = cells["int8_classifier", "int8-static", "torchscript"]
    assert skip["status"] == "skip"
    assert "torchscript does not serve int8-static" in skip["reason"]
    assert "eager, executorch, onnxruntime" in skip["reason"]


@pytest.mark.slow  # torchao (eager and compiled), and the dynamic recipe on ExecuTorch and ONNX Runtime
def test_int8_dynamic_on_every_backend_that_serves_it(tmp_path):
    _needs_pt2e()
    rows = run_rows(
        tmp_path / "run",
        *("--case-file", str(CASES), "--suite", "int8", "--rounds", "1"),
        *("--precision", "int8-static,int8-dynamic"),
        *("--backend", "eager,torchao,compile,executorch,onnxruntime"),
    )
    cells = by_cell(rows)
    assert len(rows) == 20, explain(rows)
    assert cells["int8_classifier", "int8-static", "compile"]["status"] == "skip"
    strict = cells["int8_strict", "int8-static", "eager"]  # the case's own agreement budget
    assert strict["status"] == "fail" and strict["int8_failed"] == "agreement"
    assert strict["reason"].startswith("agreement failed: ") and "< 200" in strict["reason"]
    assert (
        "torchao does not serve int8-static"
        in cells["int8_classifier", "int8-static", "torchao"]["reason"]
    )
    ref = cells["int8_classifier", "int8-dynamic", "eager"]
    assert ref["status"] == "pass" and ref["quant_act_observer"] == "PlaceholderObserver"
    assert ref["fidelity_step_source"] == "range"  # a dynamic linear's output stays float
    torchao = cells["int8_classifier", "int8-dynamic", "torchao"]
    assert "Int8DynamicActivationInt8WeightConfig" in torchao["backend_int8_recipe"]
    ort = cells["int8_classifier", "int8-dynamic", "onnxruntime"]
    assert ort["backend_int8_quantizer"] == "onnxruntime"
    assert "quantize_dynamic" in ort["backend_int8_recipe"]
    compiled = cells["int8_classifier", "int8-dynamic", "compile"]
    assert "Int8DynamicActivationInt8WeightConfig" in compiled["backend_int8_recipe"]
    for backend in ("torchao", "compile", "executorch", "onnxruntime"):
        row = cells["int8_classifier", "int8-dynamic", backend]
        assert row["status"] == "pass", explain(rows)
        assert 0 < row["fidelity_max_steps"] <= INT8_TOLERANCE.quant_max_steps


@pytest.mark.slow  # ONNX export and ORT's calibration
def test_onnxruntime_own_static_quantizer_on_the_same_calibration(tmp_path):
    _needs_pt2e()
    rows = run_rows(
        tmp_path / "run",
        *("--case-file", str(CASES), "--suite", "int8", "--case", "int8_classifier"),
        *("--precision", "int8-static", "--rounds", "1", "--backend", "eager,onnxruntime"),
        *("--backend-option", "onnxruntime.int8_quantizer=onnxruntime"),
    )
    ort = by_cell(rows)["int8_classifier", "int8-static", "onnxruntime"]
    assert ort["backend_int8_quantizer"] == "onnxruntime", explain(rows)
    assert "quantize_static(QDQ, per_channel=True" in ort["backend_int8_recipe"]
    # Another quantizer (MinMax, not the reference's histogram) on the same data:
    # its own scales, so not bit-equal, yet within the fidelity bounds here.
    assert ort["status"] == "pass", explain(rows)
    assert 0 < ort["fidelity_max_steps"] <= INT8_TOLERANCE.quant_max_steps


@pytest.mark.slow  # lowering to ExecuTorch and exporting to ONNX: about a minute
def test_int8_executorch_and_onnxruntime_match_the_quantized_reference(tmp_path):
    _needs_pt2e()
    rows = run_rows(
        tmp_path / "run",
        *("--suite", "models", "--case", "mlp", "--case", "lenet"),
        *("--precision", "fp32,int8-static", "--rounds", "1"),
        *("--backend", "eager,executorch,onnxruntime"),
    )
    cells = by_cell(rows)
    assert len(rows) == 12, explain(rows)
    for case in ("mlp", "lenet"):
        for backend in ("executorch", "onnxruntime"):
            row = cells[case, "int8-static", backend]
            assert row["status"] == "pass", explain(rows)
            # The same program: at most a step apart where integer kernels round otherwise.
            assert row["fidelity_max_steps"] < 1.001 and row["fidelity_mean_steps"] < 0.1
            assert row["fidelity_step_source"] == "graph" and row["agree_cosine"] > 0.999
        assert cells[case, "int8-static", "onnxruntime"]["backend_int8_quantizer"] == "pt2e"
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "id='tradeoff'" in page and "speedup over fp32 eager" in page


@pytest.mark.slow  # quantizes each of the model's layers alone for the localization
def test_planted_zero_point_fault_is_caught_and_localized(tmp_path):
    _needs_pt2e()
    out = tmp_path / "run"
    rows = run_rows(
        out,
        *("--case-file", str(FAULT), "--suite", "models", "--case", "mlp"),
        *("--precision", "int8-static", "--backend", "eager,int8-zp-fault"),
        *("--backend-option", "int8-zp-fault.target=2", "--rounds", "1"),
    )
    cells = by_cell(rows)
    assert cells["mlp", "int8-static", "eager"]["status"] == "pass", explain(rows)
    fault = cells["mlp", "int8-static", "int8-zp-fault"]
    assert fault["backend_planted"] == 1
    assert fault["status"] == "fail" and fault["int8_failed"] == "fidelity", explain(rows)
    assert fault["reason"].startswith("fidelity failed: ")
    assert fault["culprit"] == "2", fault.get("localize_error")


def test_tradeoff_marks_the_pareto_front_and_renders(tmp_path):
    def row(backend, precision, latency, **extra):
        return {
            "case": "m", "kind": "model", "suite": "s", "device": "cpu", "mode": "infer",
            "backend": backend, "precision": precision, "status": "pass", "reason": "",
            "latency_ms_median": latency, "throughput_items_s": 1.0 / latency,
            "cosine": 1.0 - 1e-12, **extra,
        }  # fmt: skip

    rows = [
        row("eager", "fp32", 4.0),
        row("onnxruntime", "fp32", 2.0),  # faster, as close: on the front
        row("eager", "int8-static", 8.0, agree_cosine=0.999),  # slower and farther: dominated
        row("executorch", "int8-static", 1.0, agree_cosine=0.999),  # fastest: on the front
        row("onnxruntime", "int8-static", 1.5, agree_cosine=0.99),  # dominated by executorch
    ]
    frame = charts.tradeoff_frame(pd.DataFrame(rows))
    front = dict(zip(frame["cell"], frame["pareto"], strict=True))
    assert front == {
        "cpu/eager/fp32": False,
        "cpu/onnxruntime/fp32": True,
        "cpu/eager/int8-static": False,
        "cpu/executorch/int8-static": True,
        "cpu/onnxruntime/int8-static": False,
    }
    speed = dict(zip(frame["cell"], frame["speedup_vs_fp32_eager"], strict=True))
    assert speed["cpu/executorch/int8-static"] == 4.0
    page = report.render(rows, tmp_path, {"host": "h"})["html"]
    dom, console = open_headless(page, tmp_path)
    assert console == []
    assert "Speed vs accuracy" in dom and "speedup over fp32 eager" in dom


# -- what the probe of issue 36 found ------------------------------------------------

VERDICT_CASES = DATA / "int8_verdict_cases.py"


def test_integer_outputs_nothing_quantized_and_a_recipe_that_loses_the_task(tmp_path):
    """An argmax is judged by exact agreement with fp32 (no cosine, no SQNR
    never computed); a model the recipe leaves in float is no int8 test; a
    quantized reference that fails agreement is the recipe's fault."""
    _needs_pt2e()
    rows = run_rows(
        tmp_path / "run",
        *("--case-file", str(VERDICT_CASES), "--suite", "int8-probe"),
        *("--precision", "int8-static", "--backend", "eager", "--rounds", "1"),
    )
    cells = {r["case"]: r for r in rows}
    argmax = cells["faint_argmax"]
    assert argmax["status"] == "fail" and argmax["int8_failed"] == "agreement", explain(rows)
    assert 0 <= argmax["agree_exact"] < 0.9 and argmax["agree_min_exact"] == 0.9
    assert "of integer elements equal fp32 eager's (bound 0.9)" in argmax["reason"]
    for never_computed in ("agree_cosine", "agree_sqnr_db", "agree_top1", "fidelity_max_steps"):
        assert argmax.get(never_computed) is None, never_computed
    assert argmax["blame"] == "quantization" and argmax["quant_reference_agrees"] is False
    assert argmax["output_dtype"] == "int64"
    lenient = cells["faint_argmax_lenient"]  # the case's own integer budget
    assert lenient["status"] == "pass" and lenient["agree_min_exact"] == 0.0, explain(rows)
    assert 0 <= lenient["agree_exact"] < 0.9  # its own inputs: the same faint model
    logits = cells["faint_logits"]
    assert logits["status"] == "fail" and logits["int8_failed"] == "agreement", explain(rows)
    assert logits["fidelity_max_steps"] == 0.0 and logits["agree_cosine"] == 0.0
    assert logits["blame"] == "quantization" and logits["agree_exact"] is None
    nothing = cells["sin_cumsum"]
    assert nothing["status"] == "error" and nothing["blame"] == "case", explain(rows)
    assert "no op was quantized" in nothing["reason"]
    assert "quant_mode" not in nothing and nothing.get("agree_sqnr_db") is None


@pytest.mark.slow  # exporting and lowering the quantized program
def test_a_recipe_that_loses_the_task_is_not_the_runtime_s(tmp_path):
    _needs_pt2e()
    rows = run_rows(
        tmp_path / "run",
        *("--case-file", str(VERDICT_CASES), "--suite", "int8-probe"),
        *("--case", "faint_logits", "--case", "faint_argmax", "--rounds", "1"),
        *("--precision", "int8-static", "--backend", "eager,onnxruntime,executorch"),
    )
    assert len(rows) == 6, explain(rows)
    for row in rows:
        assert row["status"] == "fail" and row["int8_failed"] == "agreement", explain(rows)
        assert row["blame"] == "quantization", explain(rows)
