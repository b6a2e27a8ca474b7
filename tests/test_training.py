"""Train cells through the real command line: the mode axis, the verdict on
losses, gradients and updates against the fp64 reference training run, the
GradScaler columns, DDP, planted training bugs, resume, DataLoader rows and a
LightningModule case (docs/training.md)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from tests.backend_runs import TINY, by_cell, explain, run_rows
from tests.helpers import DATA, read_rows, run_cli, start_cli
from torchparity.axes.matrix import Cell

BUGS = DATA / "train_bug_backends.py"


def train_rows(rows: list[dict]) -> dict[tuple[str, str, str], dict]:
    return by_cell([r for r in rows if r["mode"] == "train"])


def test_train_cell_ids_keep_infer_ids() -> None:
    infer = Cell("m", "model", "s", "cpu", "fp32", "eager")
    train = Cell("m", "model", "s", "cpu", "fp32", "eager", "train")
    assert infer.id == "m|cpu|fp32|eager"  # run directories from before the mode axis resume
    assert train.id == "m|cpu|fp32|eager|train"


def test_train_mode_eager_compile_torchscript_and_skips(tmp_path: Path) -> None:
    rows = run_rows(
        tmp_path / "run",
        "--case-file",
        str(TINY),
        "--suite",
        "tiny",
        "--case",
        "tiny_linear",
        "--mode",
        "infer,train",
        "--backend",
        "eager,compile,torchscript,onnxruntime",
        "--precision",
        "fp32,amp-fp16",
        "--backend-option",
        "compile.backend=eager",
    )
    assert {r["mode"] for r in rows} == {"infer", "train"}
    assert len(rows) == 2 * 4 * 2 and len({r["cell_id"] for r in rows}) == len(rows)
    train = train_rows(rows)
    for backend in ("eager", "compile", "torchscript"):
        row = train[("tiny_linear", "fp32", backend)]
        assert row["status"] == "pass", explain([row])
        assert row["steps"] == 3 and len(row["losses"]) == 3
        assert 0 <= row["update_rel_err"] <= row["update_bound"] < 0.5
        assert row["steps_per_s"] > 0 and row["throughput_items_s"] > 0 and row["prepare_s"] >= 0
    assert train[("tiny_linear", "fp32", "onnxruntime")]["status"] == "skip"
    assert "inference only" in train[("tiny_linear", "fp32", "onnxruntime")]["reason"]
    scaled = train[("tiny_linear", "amp-fp16", "eager")]
    assert scaled["status"] == "pass", explain([scaled])
    assert (
        scaled["amp_unscaled"] is True
        and scaled["amp_skipped_steps"] == 0
        and scaled["amp_scale_final"] > 0
    )
    assert "torchscript" in train[("tiny_linear", "amp-fp16", "torchscript")]["reason"].lower()
    report = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "Training" in report and "cpu/eager/fp32/train" in report


@pytest.mark.parametrize(
    "optimizer", ["sgd", pytest.param("adamw-foreach", marks=pytest.mark.slow)]
)
@pytest.mark.slow
def test_planted_training_bugs_fail(tmp_path: Path, optimizer: str) -> None:
    rows = run_rows(
        tmp_path / "run",
        "--case-file",
        str(TINY),
        "--case-file",
        str(BUGS),
        "--suite",
        "tiny",
        "--case",
        "tiny_linear",
        "--mode",
        "train",
        "--optimizer",
        optimizer,
        "--precision",
        "fp32",
        "--backend",
        "eager,buggy-no-weight-decay,buggy-half-gradients",
    )
    train = train_rows(rows)
    assert train[("tiny_linear", "fp32", "eager")]["status"] == "pass", explain(rows)
    no_wd = train[("tiny_linear", "fp32", "buggy-no-weight-decay")]
    assert no_wd["status"] == "fail" and "parameter update" in no_wd["reason"], explain(rows)
    half = train[("tiny_linear", "fp32", "buggy-half-gradients")]
    assert half["status"] == "fail" and "first-step gradients" in half["reason"], explain(rows)
    assert all(r["optimizer"] == optimizer for r in train.values())


@pytest.mark.slow
def test_ddp_two_ranks_match_single_process_reference(tmp_path: Path) -> None:
    rows = run_rows(
        tmp_path / "run",
        "--case-file",
        str(TINY),
        "--suite",
        "tiny",
        "--case",
        "tiny_linear",
        "--mode",
        "infer,train",
        "--backend",
        "ddp",
        "--precision",
        "fp32",
    )
    train = train_rows(rows)[("tiny_linear", "fp32", "ddp")]
    assert train["status"] == "pass", explain([train])
    assert (
        train["ddp_world_size"] == 2
        and train["ddp_backend"] == "gloo"
        and train["ddp_ranks_agree"] is True
    )
    assert isinstance(train["allreduce_overhead_ms"], float) and train["prepare_s"] > 0
    infer = [r for r in rows if r["mode"] == "infer"][0]
    assert infer["status"] == "skip" and "--mode train" in infer["reason"]


@pytest.mark.slow
def test_ddp_rank_without_all_reduced_gradients_fails(tmp_path: Path) -> None:
    rows = run_rows(
        tmp_path / "run",
        "--case-file",
        str(TINY),
        "--case-file",
        str(BUGS),
        "--suite",
        "tiny",
        "--case",
        "tiny_linear",
        "--mode",
        "train",
        "--backend",
        "buggy-ddp-unsynced-rank",
        "--precision",
        "fp32",
    )
    row = train_rows(rows)[("tiny_linear", "fp32", "buggy-ddp-unsynced-rank")]
    assert row["status"] == "fail" and row["ddp_ranks_agree"] is False, explain([row])
    assert "not all-reduced alike" in row["reason"]


@pytest.mark.slow
def test_run_killed_mid_training_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [
        "run",
        "--case-file",
        str(TINY),
        "--suite",
        "tiny",
        "--mode",
        "train",
        "--backend",
        "eager",
        "--precision",
        "fp32,amp-bf16,bf16",
        "--device",
        "cpu",
        "--min-time",
        "0.01",
        "--out",
        str(out),
        "--quiet",
    ]
    proc = start_cli(*args)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (out / "results.jsonl").is_file():
        time.sleep(0.2)
    proc.kill()
    proc.wait(30)
    before = len(read_rows(out)) if (out / "results.jsonl").is_file() else 0
    assert before < 6
    done = run_cli("run", "--resume", "--out", str(out), "--quiet", timeout=600)
    assert done.returncode == 0, done.stderr
    rows = read_rows(out)
    assert len(rows) == 6 and len({r["cell_id"] for r in rows}) == 6
    assert all(r["mode"] == "train" and r["status"] in ("pass", "fail") for r in rows), explain(
        rows
    )


def test_data_subcommand_rows_and_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli(
        "data",
        "--workers",
        "0,1",
        "--samples",
        "48",
        "--batch",
        "16",
        "--epochs",
        "1",
        "--out",
        str(out),
        "--quiet",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(out)
    assert {r["kind"] for r in rows} == {"data"} and {r["num_workers"] for r in rows} == {0, 1}
    assert all(r["status"] == "pass" and r["samples"] == 48 and r["samples_s"] > 0 for r in rows), (
        rows
    )
    assert (
        len({r["data_checksum"] for r in rows}) == 1
    )  # the same images through every configuration
    assert any(r["persistent_workers"] for r in rows) and any(r["pin_memory"] for r in rows)
    assert "DataLoader" in (out / "report.html").read_text(encoding="utf-8")
    assert "## DataLoader" in (out / "summary.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mode", "fly"], "unknown mode 'fly'"),
        (["--mode", "train", "--optimizer", "adam9"], "unknown optimizer 'adam9'"),
        (["--mode", "train", "--train-steps", "0"], "--train-steps must be at least 1"),
    ],
)
def test_train_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    proc = run_cli("run", "--out", str(tmp_path / "r"), *args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("lightning") is None, reason="lightning not installed")
def test_lightning_module_trains_through_its_training_step(tmp_path: Path) -> None:
    rows = run_rows(
        tmp_path / "run",
        "--case-file",
        str(DATA / "lightning_cases.py"),
        "--suite",
        "lightning",
        "--mode",
        "infer,train",
        "--backend",
        "eager",
        "--precision",
        "fp32",
    )
    train = train_rows(rows)[("lit_classifier", "fp32", "eager")]
    assert train["status"] == "pass" and train["optimizer"] == "case", explain([train])
    assert [r["status"] for r in rows if r["mode"] == "infer"] == ["pass"]


def test_tolerance_used_is_the_worst_error_over_its_bound():
    """The headline ranks cells by it: a train cell 10x over its loss bound reads 10, not a bound."""
    from torchparity.verdicts.train_drift import TrainDrift

    drift = TrainDrift(
        loss_rel_err=[1e-3, 0.1],
        loss_bounds=[0.01, 0.01],
        grad_rel_err=0.02,
        grad_bound=0.1,
        update_rel_err=float("nan"),
        update_bound=0.1,
        param_rel_err=0.0,
    )
    assert drift.columns()["tolerance_used"] == float("inf")  # NaN is beyond any bound
    drift.update_rel_err = 0.05
    assert drift.columns()["tolerance_used"] == pytest.approx(10.0)
