"""The command line end to end, in real subprocesses."""

import pandas as pd
import pytest

from tests.helpers import read_env, read_rows


def test_run_tiny_suite_end_to_end(cli, tiny_cases, tmp_path):
    out = tmp_path / "run"
    proc = cli(
        "run",
        "--case-file",
        str(tiny_cases),
        "--suite",
        "tiny",
        "--device",
        "cpu,cuda,mps",  # named: an absent one is a skip row per cell
        "--out",
        str(out),
        "--min-time",
        "0.01",
    )
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out / "results.csv")
    # every cell of the matrix has a row: 2 cases x 3 devices x 4 precisions x eager
    assert len(frame) == 2 * 3 * 4
    cpu = frame[frame.device == "cpu"]
    assert set(cpu.status) == {"pass"}, cpu[["case", "precision", "status", "reason"]]
    others = frame[frame.device != "cpu"]
    assert set(others.status) == {"skip"} and others.reason.str.len().min() > 10
    assert cpu.latency_ms_median.gt(0).all() and cpu.throughput_items_s.gt(0).all()
    assert cpu.output_digest.notna().all()
    env = read_env(out)
    assert env["torch"] and env["fingerprint"] and env["cores"]
    rows = read_rows(out)
    heads = next(r for r in rows if r["case"] == "tiny_heads" and r["device"] == "cpu")
    assert heads["leaf_names"] == [".first", ".second['b']", ".second['argmax']"]
    assert (out / "summary.md").exists() and (out / "report.html").exists()
    assert "tiny_heads" in proc.stdout  # the console table


def test_errors_are_rows_and_known_failures_are_xfail(cli, tiny_cases, tmp_path):
    out = tmp_path / "run"
    proc = cli(
        "run",
        "--case-file",
        str(tiny_cases),
        "--suite",
        "tiny_broken",
        "--out",
        str(out),
        "--device",
        "cpu",
        "--precision",
        "fp32,bf16",
        "--min-time",
        "0.01",
    )
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out / "results.csv").set_index("precision")
    assert frame.loc["fp32", "status"] == "error"
    assert frame.loc["fp32", "reason"] == "reference: RuntimeError: this model is broken on purpose"
    assert frame.loc["bf16", "status"] == "xfail"
    assert "https://example.org/1" in frame.loc["bf16", "reason"]
    strict = cli(
        "run",
        "--case-file",
        str(tiny_cases),
        "--suite",
        "tiny_broken",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--out",
        str(tmp_path / "strict"),
        "--strict",
        "--quiet",
    )
    assert strict.returncode == 1


@pytest.mark.slow
def test_shards_union_is_the_whole_matrix(cli, tiny_cases, tmp_path):
    ids = []
    for i in (1, 2):
        out = tmp_path / f"s{i}"
        proc = cli(
            "run",
            "--case-file",
            str(tiny_cases),
            "--suite",
            "tiny",
            "--device",
            "cpu",
            "--precision",
            "fp32",
            "--shard",
            f"{i}/2",
            "--out",
            str(out),
            "--quiet",
            "--no-isolate",
            "--min-time",
            "0.01",
        )
        assert proc.returncode == 0, proc.stderr
        ids += list(pd.read_csv(out / "results.csv").case)
    assert sorted(ids) == ["tiny_heads", "tiny_linear"]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["run", "--case", "nope"], "no case matches 'nope'"),
        (["run", "--backend", "tensorrt"], "unknown backend 'tensorrt'; valid: "),
        (["run", "--device", "tpu"], "unknown device 'tpu'; valid: cpu, cuda, mps"),
        (["run", "--precision", "fp8"], "unknown precision 'fp8'; valid: fp64"),
        (["run", "--shard", "3/2"], "malformed shard '3/2'"),
        (["run", "--case-file", "/no/such.py"], "case file '/no/such.py' does not exist"),
        (["run", "--suite", "nope"], "unknown suite 'nope'; valid: "),
        (["run", "--plugin", "no_such_mod"], "plugin module 'no_such_mod' not found"),
        (["run", "--min-time", "abc"], "'abc' is not a number"),
        (["run", "--resume"], "--resume needs --out"),
        (["report", "/no/such/run"], "is not a run directory"),
        (["list", "widgets"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, args, expected):
    proc = cli(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert expected in lines[0]
    assert "Traceback" not in proc.stderr


def test_list(cli):
    proc = cli("list", "cases", "--suite", "models")
    assert proc.returncode == 0
    assert len(proc.stdout.strip().splitlines()) >= 10
    assert "cuda" in cli("list", "devices").stdout
    assert "eager" in cli("list", "backends").stdout
