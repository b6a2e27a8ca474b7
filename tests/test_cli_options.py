"""The options of the command line: one table (the parser, run.json, --resume
and docs/cli.md agree), checked values, a resume that continues the same run,
and run directories whose format version this program must know."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.helpers import DATA, ROOT, read_rows, run_cli, usage_error, write_env, write_rows
from torchparity._core.rundir import FORMAT_VERSION, RunDir
from torchparity.cli import build_parser
from torchparity.cli.options import DOCUMENTED, markdown_table

TINY = DATA / "tiny_cases.py"
QUICK = ("--device", "cpu", "--min-time", "0.01", "--rounds", "1", "--no-isolate", "--quiet")


@pytest.mark.parametrize("command", ["run", "fuzz", "data"])
def test_docs_hold_the_option_table_and_the_parser_every_option(command):
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    marker = f"{command}-options"
    table = re.search(rf"<!-- {marker} -->\n(.*?)<!-- /{marker} -->", text, re.S)
    assert table is not None and table.group(1) == markdown_table(command), (
        f"docs/cli.md's {command} option table is stale; paste "
        f"torchparity.cli.options.markdown_table({command!r})"
    )
    parser = build_parser()._subparsers._group_actions[0].choices[command]  # type: ignore[union-attr]
    flags = {f for a in parser._actions for f in a.option_strings} - {"-h", "--help"}
    assert flags == {o.flag for o in DOCUMENTED[command]}


def test_fuzz_and_data_take_the_tables_defaults_and_help():
    parser = build_parser()
    fuzz = parser.parse_args(["fuzz"])
    assert (fuzz.op, fuzz.backend, fuzz.device, fuzz.precision) == (
        [],
        ["eager"],
        ["cpu"],
        ["fp32"],
    )
    assert (fuzz.profile, fuzz.examples, fuzz.out, fuzz.quiet, fuzz.strict) == (
        "ci",
        None,
        None,
        False,
        False,
    )
    again = parser.parse_args(["fuzz", "--op", "neg", "--op", "abs"])
    assert again.op == ["neg", "abs"] and parser.parse_args(["fuzz"]).op == []  # no shared list
    data = parser.parse_args(["data", "--workers", "0,1", "--out", "d"])
    assert (data.workers, data.start_method, data.samples, data.batch, data.epochs) == (
        ["0", "1"],
        None,
        512,
        64,
        2,
    )
    assert data.out == Path("d")
    sub = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert "examples per property (default: the profile's)" in sub["fuzz"].format_help()
    assert "num_workers values (default: 0,1,2)" in sub["data"].format_help()


def test_a_bad_fuzz_or_data_value_is_one_line(capsys):
    assert "--examples" in usage_error(capsys, "fuzz", "--examples", "0")
    assert "--samples" in usage_error(capsys, "data", "--samples", "many")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, str]:
    """One real run of the tiny suite (eager, cpu, fp32) with an option for a
    backend it does not select; (run dir, stderr)."""
    out = tmp_path_factory.mktemp("resume") / "run"
    proc = run_cli(
        "run",
        "--case-file",
        str(TINY),
        "--suite",
        "tiny",
        "--precision",
        "fp32",
        "--backend-option",
        "torchscript.freeze=true",
        "--out",
        str(out),
        *QUICK,
    )
    assert proc.returncode == 0, proc.stderr
    return out, proc.stderr


def test_an_option_for_an_unselected_backend_warns(tiny_run):
    out, stderr = tiny_run
    assert (
        "warning: --backend-option torchscript.freeze: backend 'torchscript' is not selected"
        in (stderr)
    )
    assert {r["backend"] for r in read_rows(out)} == {"eager"}


def test_rows_and_run_files_carry_the_seed_and_the_format_version(tiny_run):
    out, _ = tiny_run
    assert {r["seed"] for r in read_rows(out)} == {0}
    for name in ("env.json", "run.json"):
        assert json.loads((out / name).read_text(encoding="utf-8"))["format_version"] == (
            FORMAT_VERSION
        )


def test_resume_refuses_another_selection_and_keeps_run_json(tiny_run, capsys):
    out, _ = tiny_run
    before = (out / "run.json").read_bytes()
    resume = ["run", "--resume", "--out", out, "--case-file", TINY]
    line = usage_error(
        capsys, *resume, "--seed", "1", "--backend", "torchscript", "--precision", "fp32,bf16"
    )
    for part in (
        "--seed 1 (run.json: 0)",
        "--backend torchscript (run.json: eager)",
        "--precision fp32,bf16 (run.json: fp32)",
    ):
        assert part in line, line
    assert "--mode" in usage_error(capsys, *resume, "--mode", "train")
    assert "--case" in usage_error(capsys, *resume, "--case", "tiny_linear")
    assert "--backend-option" in usage_error(
        capsys, *resume, "--backend-option", "torchscript.freeze=false"
    )
    assert "--suite" in usage_error(capsys, *resume, "--suite", "tiny_broken")
    assert "--device" in usage_error(capsys, *resume, "--device", "cpu,cuda")
    assert (out / "run.json").read_bytes() == before


def test_resume_with_the_same_selection_finishes_the_run(tiny_run):
    out, _ = tiny_run
    rows = read_rows(out)
    (out / "results.jsonl").write_text(
        json.dumps(rows[0]) + "\n", encoding="utf-8"
    )  # one cell lost
    # The same selection, spelled again (and in another order), is the same run.
    proc = run_cli(
        "run",
        "--resume",
        "--out",
        str(out),
        "--case-file",
        str(TINY),
        "--precision",
        "fp32",
        "--seed",
        "0",
        "--backend",
        "eager",
        "--time-budget",
        "100",  # how the run is carried out may change
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["cell_id"] for r in read_rows(out)) == sorted(r["cell_id"] for r in rows)
    assert RunDir(out).read_selection()["time_budget"] == 100


@pytest.mark.parametrize(
    "option, valid",
    [
        ("torchscript.freeze=maybe", "valid: true or false"),
        ("onnxruntime.opset=abc", "valid: a whole number >= 7"),
        ("onnxruntime.intra_op_threads=-1", "valid: a whole number >= 0"),
        ("onnxruntime.graph_optimization=max", "valid: disable, basic, extended, all"),
        ("compile.mode=fastest", "valid: default,"),
        ("compile.backend=nope", "inductor"),
    ],
)
def test_backend_option_values_are_checked_before_any_cell(tmp_path, capsys, option, valid):
    backend = option.split(".")[0]
    line = usage_error(
        capsys,
        "run",
        "--case-file",
        TINY,
        "--suite",
        "tiny",
        "--backend",
        backend,
        "--backend-option",
        option,
        "--out",
        tmp_path / "o",
        *QUICK,
    )
    assert option.split("=")[0] in line and valid in line, line
    assert not RunDir(tmp_path / "o").has_results()


def test_strict_fails_when_no_cell_was_tested(tmp_path):
    # TorchScript artifacts do not apply autocast: every cell is a skip row.
    proc = run_cli(
        "run",
        "--case-file",
        str(TINY),
        "--suite",
        "tiny",
        "--backend",
        "torchscript",
        "--precision",
        "amp-bf16",
        "--out",
        str(tmp_path / "run"),
        "--strict",
        *QUICK,
    )
    assert proc.returncode == 1, proc.stderr
    assert "strict: no cell was tested (all 2 cells were skipped)" in proc.stderr
    assert {r["status"] for r in read_rows(tmp_path / "run")} == {"skip"}


def test_an_empty_fail_on_is_refused(tmp_path, capsys):
    line = usage_error(capsys, "compare", tmp_path / "a", tmp_path / "b", "--fail-on", "")
    assert "names no gate; valid: throughput=N%" in line


def _run_dir(path: Path, **env) -> Path:
    row = {
        "case": "c",
        "kind": "model",
        "suite": "s",
        "device": "cpu",
        "precision": "fp32",
        "backend": "eager",
        "status": "pass",
        "reason": "",
        "cell_id": "c|cpu|fp32|eager",
    }
    write_rows(path, [row])
    write_env(path, {"host": path.name, "os": "Linux", "torch": "2", "fingerprint": "f"})
    if env:  # written by hand: write_env stamps this program's version
        text = json.dumps({"host": path.name, **env})
        (path / "env.json").write_text(text, encoding="utf-8")
    RunDir(path).write_selection({"suite": "s", "backend": ["eager"]})
    return path


@pytest.mark.parametrize(
    "version, message",
    [
        (FORMAT_VERSION + 1, "newer than this torchparity reads"),
        ("one", "unknown format_version"),
    ],
)
def test_a_run_directory_of_an_unknown_format_is_one_line(tmp_path, capsys, version, message):
    ok = _run_dir(tmp_path / "ok")
    new = _run_dir(tmp_path / "new", format_version=version)
    for argv in (
        ["report", new],
        ["report", ok, new, "--out", tmp_path / "merged"],
        ["compare", ok, new],
        ["compare", new, ok],
        ["export", new, "--format", "pytest-benchmark"],
        ["run", "--resume", "--out", new],
    ):
        line = usage_error(capsys, *argv)
        assert message in line and "env.json" in line, (argv, line)
    run_json = tmp_path / "new" / "run.json"
    run_json.write_text(json.dumps({"format_version": version}), encoding="utf-8")
    (tmp_path / "new" / "env.json").unlink()
    assert "run.json" in usage_error(capsys, "run", "--resume", "--out", tmp_path / "new")
    assert "run.json" in usage_error(
        capsys,
        "explain",
        tmp_path / "new",
        "--case",
        "c",
        "--backend",
        "eager",
        "--precision",
        "fp32",
    )
