"""Units of src/torchparity/fuzz.py: exact reproducer expressions, profiles, records."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from torchparity.cases.case import CASES, load_all
from torchparity.fuzz import properties as fuzz


@pytest.mark.parametrize(
    "tensor",
    [
        torch.tensor([[0.1, float("nan")], [float("inf"), -0.0]], dtype=torch.bfloat16),
        torch.tensor([65504.0, -6e-8, float("-inf")], dtype=torch.float16),
        torch.tensor(1e-45, dtype=torch.float32),
        torch.tensor([-(2**63), 2**63 - 1], dtype=torch.int64),
        torch.tensor([[True], [False]]),
        torch.zeros(0, 3, dtype=torch.float32),
    ],
)
def test_input_expression_rebuilds_the_exact_tensor(tensor: torch.Tensor) -> None:
    rebuilt = eval(fuzz._input_expr(tensor, None), {"torch": torch})  # noqa: S307 - our own text
    assert rebuilt.dtype == tensor.dtype and rebuilt.shape == tensor.shape
    if tensor.is_floating_point():
        assert torch.equal(rebuilt.double().nan_to_num(7.0), tensor.double().nan_to_num(7.0))
        assert torch.equal(torch.signbit(rebuilt), torch.signbit(tensor))
    else:
        assert torch.equal(rebuilt, tensor)


def test_large_inputs_go_to_npy_beside_the_table(tmp_path: Path) -> None:
    x = torch.arange(100, dtype=torch.float32).to(torch.bfloat16)
    record = {"_inputs": [x, torch.tensor([1, 2])]}
    inputs = fuzz._save_inputs(record, tmp_path, "op-backend")
    assert "npy" in inputs[0] and Path(inputs[0]["npy"]).is_file() and "values" not in inputs[0]
    assert inputs[1]["values"] == [1, 2]
    rebuilt = eval(inputs[0]["expr"], {"torch": torch})  # noqa: S307
    assert rebuilt.dtype == torch.bfloat16 and torch.equal(rebuilt, x)


def test_profiles_ci_is_bounded_and_derandomized() -> None:
    ci = fuzz.PROFILES["ci"]
    assert ci.derandomize and ci.max_examples <= 20 and ci.shapes > 0
    s = fuzz.hypothesis_settings(ci)
    assert s.deadline is None and s.derandomize and s.database is None


def test_precision_limited_op_is_skipped(tmp_path: Path) -> None:
    load_all([])
    result = fuzz.fuzz_target(
        fuzz.Target(CASES["bitwise_and"], "eager", "cpu", "fp16"),
        fuzz.PROFILES["ci"],
        out_dir=tmp_path,
    )
    assert result.row["status"] == "skip" and "fp32 only" in result.row["reason"]


def test_signature_cache_prepares_once_per_signature(tmp_path: Path) -> None:
    from torchparity import Backend, register_backend

    calls: list[tuple] = []

    class Counting(Backend):
        name = "test-counting"

        def prepare(self, module, example_inputs, ctx):
            calls.append(tuple((x.dtype, tuple(x.shape)) for x in example_inputs))
            return module

    register_backend(Counting())
    load_all([])
    # The first round's signature rule (budget rounds add signatures by time).
    first_round = dataclasses.replace(fuzz.PROFILES["ci"], time_budget_s=0)
    result = fuzz.fuzz_target(
        fuzz.Target(CASES["add"], "test-counting", "cpu", "fp32"), first_round, out_dir=tmp_path
    )
    assert result.row["status"] == "pass", result.row
    assert result.row["examples"] >= fuzz.PROFILES["ci"].max_examples
    assert len(calls) == result.row["prepared"] == result.row["signatures"]
    assert len(calls) <= fuzz.PROFILES["ci"].max_signatures < result.row["examples"]
    assert len(calls) == len(set(calls))  # never prepared twice for one signature


def test_cache_dir_reuses_artifacts_between_runs(tmp_path: Path) -> None:
    load_all([])
    target = fuzz.Target(CASES["neg"], "torchscript", "cpu", "fp32")
    first_round = dataclasses.replace(fuzz.PROFILES["ci"], time_budget_s=0)  # same signatures twice
    first = fuzz.fuzz_target(target, first_round, out_dir=tmp_path, cache_dir=tmp_path / "c")
    second = fuzz.fuzz_target(target, first_round, out_dir=tmp_path, cache_dir=tmp_path / "c")
    assert first.row["status"] == second.row["status"] == "pass"
    assert first.row["cache_hits"] == 0 and second.row["cache_hits"] == second.row["prepared"] > 0


@pytest.mark.slow
def test_time_budget_gives_cheap_backends_many_examples(tmp_path: Path) -> None:
    load_all([])
    # A budget far beyond what 12 eager examples cost, even on a loaded machine.
    profile = dataclasses.replace(fuzz.PROFILES["ci"], time_budget_s=6.0)
    result = fuzz.fuzz_target(
        fuzz.Target(CASES["neg"], "eager", "cpu", "fp32"), profile, out_dir=tmp_path
    )
    assert result.row["status"] == "pass", result.row
    assert result.row["rounds"] > 1 and result.row["examples"] > profile.max_examples


def test_time_budget_reuses_costly_signatures(tmp_path: Path) -> None:
    import time as _time

    from torchparity import Backend, register_backend

    prepared: list[tuple] = []

    class Costly(Backend):
        name = "test-costly"

        def prepare(self, module, example_inputs, ctx):
            prepared.append(tuple((x.dtype, tuple(x.shape)) for x in example_inputs))
            _time.sleep(1.2)  # over half the budget: an export's cost, scaled down
            return module

    register_backend(Costly())
    load_all([])
    profile = dataclasses.replace(fuzz.PROFILES["ci"], time_budget_s=2.0)
    result = fuzz.fuzz_target(
        fuzz.Target(CASES["neg"], "test-costly", "cpu", "fp32"), profile, out_dir=tmp_path
    )
    assert result.row["status"] == "pass", result.row
    # One prepare took over half the budget: every later example reuses it
    # (on a slow machine too: slowness only makes a second prepare fit less).
    assert len(prepared) == 1 == result.row["signatures"]
    assert result.row["examples"] >= 1
