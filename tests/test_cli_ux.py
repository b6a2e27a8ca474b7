"""The command line as a newcomer meets it (issue 37): one grammar for list
options, one line and exit 2 for bad input, text meant for people, progress and
reasons on a console that is not a terminal, honest defaults, and where the
run's time went."""

from __future__ import annotations

import io
import json
import os
import re
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import DATA, ROOT, read_rows, run_cli, usage_error
from torchparity._core.console import plural
from torchparity._core.rundir import RunDir
from torchparity.axes.devices import DEVICES
from torchparity.cli import build_parser, main
from torchparity.cli import run as run_command
from torchparity.cli.selection import selection
from torchparity.report import report as report_mod
from torchparity.report.markdown import markdown_table
from torchparity.run.progress import LogProgress
from torchparity.run.runner import Phases

UX = DATA / "ux_cases.py"
FAULTS = DATA / "fault_cases.py"
FAST = ("--backend", "eager", "--min-time", "0.005", "--rounds", "1")


@pytest.fixture(scope="module")
def ux_run(tmp_path_factory) -> tuple[Path, str, str]:
    """One real run, the options repeated as a newcomer types them; (dir, stdout, stderr)."""
    out = tmp_path_factory.mktemp("ux") / "run"
    proc = run_cli(
        "run", "--case-file", str(UX), "--suite", "ux_a", "--suite", "ux_b",
        "--precision", "fp32", "--precision", "bf16", *FAST, "--no-isolate", "--out", str(out),
        env={"TORCHPARITY_PROGRESS_INTERVAL": "0.2"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout, proc.stderr


def test_repeated_options_accumulate_and_several_suites_run(ux_run):
    out, _, _ = ux_run
    stored = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert stored["suite"] == ["ux_a", "ux_b"] and stored["precision"] == ["fp32", "bf16"]
    cells = {(r["case"], r["suite"], r["precision"]) for r in read_rows(out)}
    assert cells == {
        (case, suite, precision)
        for case, suite in (("ux_ok", "ux_a"), ("ux_markup", "ux_b"))
        for precision in ("fp32", "bf16")
    }


def test_every_list_option_takes_commas_and_repetition():
    parser = build_parser()
    run = parser.parse_args(
        ["run", "--case", "mlp,lenet", "--case", "tiny*", "--backend", "eager", "--backend",
         "onnxruntime,eager", "--case-file", "a.py", "--case-file", "b.py"]
    )  # fmt: skip
    assert run.case == ["mlp", "lenet", "tiny*"] and run.backend == ["eager", "onnxruntime"]
    assert run.case_file == ["a.py", "b.py"]
    fuzz = parser.parse_args(["fuzz", "--op", "neg,abs", "--op", "exp", "--backend", "onnxruntime"])
    assert fuzz.op == ["neg", "abs", "exp"] and fuzz.backend == ["onnxruntime"]  # not eager too
    assert parser.parse_args(["list", "--suite", "a", "--suite", "b,c"]).suite == ["a", "b", "c"]
    data = parser.parse_args(["data", "--workers", "0", "--workers", "2"])
    assert data.workers == ["0", "2"]


def test_a_value_that_would_be_dropped_is_one_line(capsys, tmp_path):
    assert "--seed takes one value; given 1 and 2" in usage_error(
        capsys, "run", "--seed", "1", "--seed", "2"
    )
    assert "--profile takes one value" in usage_error(
        capsys, "fuzz", "--profile", "ci", "--profile", "dev"
    )
    assert "--backend takes one value" in usage_error(
        capsys, "explain", tmp_path, "--case", "mlp", "--backend", "eager", "--backend",
        "onnxruntime", "--precision", "fp32",
    )  # fmt: skip
    line = usage_error(
        capsys, "run", "--backend", "onnxruntime", "--backend-option", "onnxruntime.opset=17",
        "--backend-option", "onnxruntime.opset=18", "--out", tmp_path / "r",
    )  # fmt: skip
    assert "onnxruntime.opset given twice ('17' and '18')" in line


@pytest.mark.filterwarnings("ignore:ux library")
def test_list_shows_several_suites(capsys):
    assert main(["list", "--case-file", str(UX), "--suite", "ux_a,ux_b"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == ["ux_ok", "ux_markup"]


def test_an_older_run_json_with_one_suite_is_read_and_resumed(tmp_path):
    """run.json written before several suites stored ``"suite": "models"``."""
    out = tmp_path / "old"
    rd = RunDir(out).create()
    rd.write_selection({"suite": "ux_a", "backend": ["eager"], "plugins": []})
    parse = build_parser().parse_args
    same = parse(["run", "--resume", "--out", str(out), "--suite", "ux_a"])
    assert selection(same)["suite"] == ["ux_a"]
    with pytest.raises(run_command.UsageError, match="--suite ux_b \\(run.json: ux_a\\)"):
        selection(parse(["run", "--resume", "--out", str(out), "--suite", "ux_b"]))


# -- item 4: one line, exit 2 ---------------------------------------------------


def test_bad_input_is_one_line_naming_the_closest(capsys, tmp_path, ux_run):
    a_file = tmp_path / "a-file"
    a_file.write_text("", encoding="utf-8")
    assert "is not a directory" in usage_error(capsys, "data", "--out", a_file)
    line = usage_error(capsys, "fuzz", "--op", "nosuchop*")
    assert "closest:" in line and "in all (torchparity list)" in line and len(line) < 250
    assert "closest: matmul" in usage_error(capsys, "fuzz", "--op", "matmull")
    line = usage_error(
        capsys, "explain", ux_run[0], "--case", "lenett", "--backend", "eager", "--precision",
        "fp32",
    )  # fmt: skip
    assert "unknown case 'lenett'; closest: lenet" in line


def test_isolate_overrides_a_stored_no_isolate_on_resume(tmp_path):
    out = tmp_path / "r"
    RunDir(out).create().write_selection({"suite": ["ux_a"], "isolate": False, "plugins": []})
    parse = build_parser().parse_args
    assert selection(parse(["run", "--resume", "--out", str(out)]))["isolate"] is False
    assert selection(parse(["run", "--resume", "--isolate", "--out", str(out)]))["isolate"] is True


@pytest.mark.slow  # two runs, one with a worker; the option itself: the test above
def test_an_aborted_no_isolate_run_resumes_isolated(tmp_path):
    out = tmp_path / "abort"
    common = ("--case-file", str(FAULTS), "--suite", "faults", "--case", "fault_abort", *FAST)
    first = run_cli("run", *common, "--no-isolate", "--precision", "fp32", "--out", str(out))
    assert first.returncode != 0 and (out / "run.lock").exists()  # os.abort() ends the process
    resumed = run_cli("run", *common, "--resume", "--isolate", "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert "1 cell ->" in resumed.stderr  # and not "1 cells"
    assert [r["status"] for r in read_rows(out)] == ["crash"]
    assert not (out / "run.lock").exists()
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["isolate"] is True


# -- item 5: text meant for people ----------------------------------------------


def test_reasons_read_as_text_on_the_console_and_in_summary(ux_run):
    out, stdout, _ = ux_run
    assert "error (eager): reference: RuntimeError: a < b & c > d" in stdout
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert "a \\< b \\& c \\> d" in summary
    assert not re.search(r"&(lt|gt|amp);", stdout + summary)


def test_terminal_tables_print_text_and_no_none():
    frame = pd.DataFrame({"shape": ["[32, 128]"], "err": [None], "note": ["a < b"]})
    assert markdown_table(frame, escape=False).splitlines()[-1] == "| [32, 128] |  | a < b |"


def test_the_reproducer_command_works_from_here(tmp_path, monkeypatch):
    where = tmp_path / "run dir" / "localization"
    record = {
        "case": "mlp",
        "reproducer": {
            "script": "mlp-repro.py",
            "inputs": "mlp-inputs.npz",
            "command": "torchparity run --case-file mlp-repro.py --suite repro --case x",
        },
    }
    monkeypatch.chdir(tmp_path)
    line = report_mod.localization_summary(record, where).splitlines()[-1]
    assert '--case-file "run dir/localization/mlp-repro.py"'.replace("/", os.sep) in line


@pytest.mark.filterwarnings("ignore:ux library")
def test_the_announcement_counts_in_words(capsys, tmp_path):
    args = build_parser().parse_args(
        ["run", "--case-file", str(UX), "--case", "ux_ok", "--precision", "fp32", "--device",
         "cpu", *FAST, "--out", str(tmp_path / "one")]
    )  # fmt: skip
    run_command._announce(run_command.plan_run(args))
    assert f"torchparity: 1 cell -> {tmp_path / 'one'}" in capsys.readouterr().err


def test_help_and_counts_read_as_prose():
    text = " ".join(build_parser().format_help().split())
    assert "``" not in text and "comma lists" in text
    assert [plural(1, "cell"), plural(2, "cell"), plural(3, "property")] == [
        "1 cell",
        "2 cells",
        "3 properties",
    ]


# -- item 6: progress and reasons -----------------------------------------------


def test_progress_lines_reach_a_log_and_reasons_follow_the_table(ux_run):
    _, stdout, stderr = ux_run
    progress = [line for line in stderr.splitlines() if line.startswith("torchparity run: ")]
    assert progress and re.search(r"\d+/4 cells done, \d+ failures? so far", progress[-1])
    assert "reasons:\n  2 error (eager): reference: RuntimeError: a < b & c > d" in stdout


def test_progress_line_counts_cells_failures_and_eta():
    stream = io.StringIO()
    with LogProgress("run", cells=3, stream=stream, interval=0.05) as log:
        log(2, 4)
        log.row({"status": "pass"})
        log.row({"status": "error"})
        time.sleep(0.3)
    line = stream.getvalue().splitlines()[-1]
    assert re.fullmatch(
        r"torchparity run: \d+ s, 2/3 cells done, 1 failure so far, step 2/4, eta \d+ s", line
    )


def test_a_batch_sweep_is_labelled_in_the_console_table():
    rows = [
        {
            "case": "mlp", "device": "cpu", "precision": "fp32", "backend": "eager",
            "mode": "infer", "status": "pass", "latency_ms_median": ms, "batch": batch,
            "cell_id": f"mlp|cpu|fp32|eager|batch={batch}",
        }
        for batch, ms in ((1, 0.5), (8, 2.0))
    ]  # fmt: skip
    table = report_mod.console_table(rows)
    assert "eager/cpu/fp32/batch=1" in table and "eager/cpu/fp32/batch=8" in table
    assert "pass 0.5ms" in table and "pass 2ms" in table


# -- item 7: defaults -----------------------------------------------------------


def test_the_default_devices_are_those_present(ux_run):
    out, _, stderr = ux_run
    present = {name for name, dev in DEVICES.items() if dev.unavailable() is None}
    assert {r["device"] for r in read_rows(out)} == present
    absent = set(DEVICES) - present
    if absent:
        assert "absent devices (not run): " in stderr and all(d in stderr for d in absent)


@pytest.mark.filterwarnings("ignore:ux library")
def test_a_case_file_without_a_suite_runs_its_cases(capsys):
    args = build_parser().parse_args(["run", "--case-file", str(UX), *FAST, "--device", "cpu"])
    plan = run_command.plan_run(args)
    assert {c.case for c in plan.cells} == {"ux_ok", "ux_markup"}
    assert "no --suite given: the 2 cases the case files register" in capsys.readouterr().err


def test_library_warnings_and_logs_go_to_the_worker_log(ux_run):
    out, stdout, stderr = ux_run
    said = (
        "ux library log line at import",
        "ux library chatter at import",
        "ux chatter in forward",
        "ux root-bound log line in forward",
    )
    assert not [s for s in said if s in stdout + stderr]
    log = (out / "worker.log").read_text(encoding="utf-8")
    assert all(s in log for s in said)


def test_the_readme_cache_dir_is_ignored_by_git():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    dirs = re.findall(r"--cache-dir (\S+)", readme)
    assert dirs and all(d.startswith("reports/") for d in dirs)


# -- item 8: phases -------------------------------------------------------------


def test_the_run_ends_with_where_its_time_went(ux_run):
    out, _, stderr = ux_run
    line = next(x for x in stderr.splitlines() if x.startswith("phases: "))
    seconds = {k: float(v) for k, v in re.findall(r"([a-z/]+) (\d+\.\d) s", line)}
    assert set(seconds) == {"prepare/compile", "verdicts", "timing", "rendering", "other", "wall"}
    prepare = sum(float(r.get("prepare_s") or 0) for r in read_rows(out))
    assert abs(seconds["prepare/compile"] - prepare) < 0.06  # what the rows measured
    parts = sum(v for k, v in seconds.items() if k != "wall")
    assert abs(parts - seconds["wall"]) < 0.5


def test_phases_split_the_verdict_tasks():
    phases = Phases(prepare_s=2.0, verdict_s=5.0, round1_s=1.0, timing_s=3.0, rendering_s=0.5)
    line = phases.line()
    assert "prepare/compile 2.0 s, verdicts 2.0 s, timing 4.0 s, rendering 0.5 s" in line
