"""The one cell pipeline: verdicts that can be neither vacuous nor stale, inputs
each consumer owns, one output flattening, one grad mode, one autocast rule
for run and fuzz. End to end through the command line, plus the stages' units."""

from __future__ import annotations

import re
import sys

import pytest
import torch

from tests.backend_runs import by_cell, explain, run_rows
from tests.helpers import DATA, read_rows
from torchparity.backends import get_backend
from torchparity.cases.case import Case
from torchparity.cases.outputs import Flattened, flatten
from torchparity.cases.reference import Reference
from torchparity.cell.pipeline import (
    NothingToCompare,
    check_comparable,
    mutated_inputs,
    name_outputs,
)

CASES = DATA / "pipeline_cases.py"


def test_outputs_with_nothing_to_compare_are_errors_that_say_why(tmp_path):
    rows = run_rows(
        tmp_path / "run",
        "--case-file",
        str(CASES),
        "--suite",
        "vacuous",
        "--precision",
        "fp32",
        "--backend",
        "eager,as-is",
    )
    assert len(rows) == 10 and {r["status"] for r in rows} == {"error"}, explain(rows)
    reason = {(r["case"], r["backend"]): r["reason"] for r in rows}
    assert "no output tensors to compare" in reason["returns_none", "eager"]
    assert (
        "NoneType" in reason["returns_none", "eager"] and "str" in reason["returns_text", "as-is"]
    )
    assert "empty container" in reason["returns_empty_tuple", "eager"]
    assert (
        "no elements" in reason["zero_batch", "eager"] and "(0, 2)" in reason["zero_batch", "eager"]
    )
    assert "no elements" in reason["zero_size_input", "as-is"]
    # A vacuous output is the case's, on every backend: not PyTorch's, not the backend's.
    assert {r["blame"] for r in rows} == {"case"}, explain(rows)


def test_a_case_may_declare_that_empty_output_is_expected(tmp_path):
    rows = run_rows(
        tmp_path / "run", "--case-file", str(CASES), "--suite", "empty_ok", "--precision", "fp32"
    )
    assert [r["status"] for r in rows] == ["pass"], explain(rows)


@pytest.mark.slow
def test_a_model_that_edits_its_inputs_gets_the_same_verdict_in_any_order(tmp_path):
    # One cell alone (the reference computed in the same cell) and after others.
    alone = run_rows(
        tmp_path / "alone",
        "--case-file",
        str(CASES),
        "--suite",
        "mutating",
        "--precision",
        "fp32",
        "--backend",
        "as-is",
    )
    both = run_rows(
        tmp_path / "both",
        "--case-file",
        str(CASES),
        "--suite",
        "mutating",
        "--precision",
        "fp32,fp64",
        "--backend",
        "eager,as-is",
    )
    assert {r["status"] for r in alone + both} == {"pass"}, explain(alone + both)
    assert all(r["mutates_inputs"] == [0] for r in alone + both)


def test_an_edited_model_is_not_judged_against_a_stale_reference(tmp_path):
    cases = tmp_path / "cases.py"
    source = (
        "import torch\nfrom torchparity import register_model\n"
        "class M(torch.nn.Module):\n    def forward(self, x):\n        return x * {k}\n"
        "register_model('edited', M, lambda gen, batch: (gen.normal(batch, 4),), suites=['e'])\n"
    )
    cache = tmp_path / "cache"
    args = (
        "--case-file",
        str(cases),
        "--suite",
        "e",
        "--precision",
        "fp32",
        "--cache-dir",
        str(cache),
    )
    cases.write_text(source.format(k=2.0), encoding="utf-8")
    first = run_rows(tmp_path / "first", *args)
    cases.write_text(source.format(k=3.0), encoding="utf-8")
    second = run_rows(tmp_path / "second", *args)
    assert [r["status"] for r in first + second] == ["pass", "pass"], explain(first + second)
    assert first[0]["output_digest"] != second[0]["output_digest"]


def test_every_backend_runs_under_one_grad_mode(tmp_path):
    rows = run_rows(
        tmp_path / "run",
        "--case-file",
        str(CASES),
        "--suite",
        "grad_mode",
        "--precision",
        "fp32",
        "--backend",
        "eager,as-is,user-nograd",
        "--case-file",
        str(DATA / "plugin_backend.py"),
    )
    assert {r["status"] for r in rows} == {"pass"}, explain(rows)
    assert all(r["eager_max_abs_diff"] == 0.0 for r in rows)


@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="exact peak memory (VmHWM) is Linux's"
)
def test_peak_memory_of_a_backend_excludes_the_eager_comparison(tmp_path):
    rows = run_rows(
        tmp_path / "run",
        "--case-file",
        str(CASES),
        "--suite",
        "big",
        "--precision",
        "fp32",
        "--backend",
        "eager,as-is",
    )
    cells = by_cell(rows)
    weights_mb = 4096 * 1025 * 4 / 2**20  # one fp32 copy of the model: 16 MiB
    as_is = cells["big_linear", "fp32", "as-is"]["peak_mem_mb"]
    # The cell's copy of the model counts; eager's copy for eager_max_abs_diff does not.
    assert as_is < 1.5 * weights_mb, explain(rows)


def test_fuzz_skips_autocast_for_a_backend_that_cannot_autocast(cli, tmp_path):
    out = tmp_path / "fuzz"
    proc = cli(
        "fuzz",
        "--case-file",
        str(CASES),
        "--backend",
        "as-is",
        "--op",
        "neg",
        "--precision",
        "amp-bf16",
        "--device",
        "cpu",
        "--examples",
        "3",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    (row,) = read_rows(out)
    assert row["status"] == "skip" and "does not run under autocast" in row["reason"]


GPT2_BACKENDS = ["eager", "torchscript-trace", "export", "onnxruntime"]
# A dropped leaf is "NAME: TYPE"; the cache is one of transformers' *Cache classes.
CACHE_LEAF = re.compile(r"\['\w+'\]: \w*Cache")


@pytest.mark.parametrize(
    "backends",
    [GPT2_BACKENDS, pytest.param(["aoti", "onnxruntime-legacy"], marks=pytest.mark.slow)],
)
@pytest.mark.slow
def test_gpt2_with_a_cache_object_in_its_output(tmp_path, backends):
    pytest.importorskip("transformers", reason="transformers is not installed (dev extra)")
    rows = run_rows(
        tmp_path / "run",
        "--case-file",
        str(DATA / "gpt2_cases.py"),
        "--suite",
        "gpt2",
        "--precision",
        "fp32",
        "--backend",
        ",".join(backends),
    )
    assert {r["status"] for r in rows} == {"pass"}, explain(rows)
    for row in rows:  # the same leaf compared everywhere; the cache object named, not lost
        assert row["leaf_names"] == ["['logits']"] and row["max_abs_err"] is not None
        # transformers renames the cache's key between releases (past_key_values, cache):
        # what counts is that one leaf, a cache object, is dropped and named.
        (dropped,) = row["dropped_leaves"]
        assert CACHE_LEAF.fullmatch(dropped), dropped
    assert len({tuple(r["dropped_leaves"]) for r in rows}) == 1, "every backend names the same leaf"


# --- the stages' units -------------------------------------------------------------


def _reference(names, tensors, dropped=()):
    return Reference(list(names), list(tensors), "", list(dropped))


def test_graph_leaves_take_eager_names_and_a_count_mismatch_says_what_is_missing():
    ref = _reference(["['logits']"], [torch.zeros(2)], ["['past_key_values']: DynamicCache"])
    named = name_outputs(get_backend("torchscript"), (torch.ones(2),), ref)
    assert named.names == ["['logits']"] and named.dropped == ["['past_key_values']: DynamicCache"]
    with pytest.raises(
        NothingToCompare, match="returned 2 output tensors.*DynamicCache.*use_cache"
    ):
        name_outputs(get_backend("torchscript"), (torch.ones(2), torch.ones(2)), ref)


def test_check_comparable_refuses_vacuous_outputs():
    case = Case("c", "model", lambda: None, lambda g, b: ())
    with pytest.raises(NothingToCompare, match="None"):
        check_comparable(case, flatten(None), _reference([], [], ["out: NoneType"]))
    with pytest.raises(NothingToCompare, match="no elements"):
        check_comparable(case, flatten(torch.zeros(0, 3)), _reference(["out"], [torch.zeros(0, 3)]))
    with pytest.raises(NothingToCompare, match="in common"):
        check_comparable(
            case, Flattened(["a"], [torch.ones(1)]), _reference(["b"], [torch.ones(1)])
        )
    assert check_comparable(case, flatten(torch.ones(2)), _reference(["out"], [torch.ones(2)])) == [
        "out"
    ]


def test_mutated_inputs_are_found_by_index():
    before = (torch.ones(2), torch.arange(3), 5)
    after = (torch.ones(2), torch.arange(3) * 2, 5)
    assert mutated_inputs(before, after) == [1]
