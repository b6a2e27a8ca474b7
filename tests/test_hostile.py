"""Hostile and broken input, through the public command line: nothing executed
that the user did not write, nothing lost, one clear line."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from tests.helpers import (
    DATA,
    cli_command,
    cli_env,
    read_rows,
    run_cli,
    start_cli,
    usage_error,
    write_env,
    write_rows,
)
from torchparity._core import cache
from torchparity._core.files import safe_file_stem
from torchparity._core.rundir import RunDir
from torchparity.cli import main

HOSTILE = DATA / "hostile_cases.py"
TINY = DATA / "tiny_cases.py"
NAMES = ["../../../../evil", "/tmp/torchparity-abs-evil", "nan", "a/b"]
QUICK = ("--device", "cpu", "--precision", "fp32", "--min-time", "0.01", "--no-isolate")


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


# -- the cache directory is data: its entries are loaded only when this user's run sealed them


class Zeros(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [torch.zeros(x.shape[0], 4)]


def _plant(user_cache: Path) -> None:
    """What an attacker with write access to the cache does: a zero-returning
    TorchScript file under one case's key (seal left), an unsealed entry under
    another, and zero references everywhere."""
    entries = {
        n: next((user_cache / "artifacts" / "torchscript").glob(f"{safe_file_stem(n, 60)}-*.pt"))
        for n in NAMES
    }
    torch.jit.save(torch.jit.script(Zeros()), str(entries["../../../../evil"]))
    cache.seal_path(entries["a/b"]).unlink()
    for ref in (user_cache / "reference").glob("*.pt"):
        data = torch.load(ref, weights_only=True)
        data["outputs"] = [torch.zeros_like(t) for t in data["outputs"]]
        torch.save(data, ref)


def test_names_stay_names_and_planted_cache_entries_are_never_loaded(tmp_path):
    user_cache = Path(os.environ[cache.CACHE_ENV])
    _stale_lock(tmp_path / "r1")
    first = run_cli(
        "run",
        "--case-file",
        HOSTILE,
        "--suite",
        "names",
        "--out",
        tmp_path / "r1",
        "--backend",
        "eager,eager,torchscript",
        *QUICK,
    )
    assert first.returncode == 0, first.stderr
    rows = read_rows(tmp_path / "r1")
    # eager,eager runs eager once; every name is a row, a file name never a path
    assert sorted((r["case"], r["backend"]) for r in rows) == sorted(
        (n, b) for n in NAMES for b in ("eager", "torchscript")
    )
    assert {r["status"] for r in rows} == {"pass"}, [(r["case"], r["reason"]) for r in rows]
    assert (
        not list(Path("/tmp").glob("torchparity-abs-evil*"))
        and not (tmp_path.parent / "evil").exists()
    )
    assert all(
        p.is_relative_to(tmp_path / "r1") for p in files_under(tmp_path) - files_under(user_cache)
    )
    assert len(list((tmp_path / "r1" / "outputs").glob("*.npz"))) == len(rows)
    assert not (
        tmp_path / "r1" / "run.lock"
    ).exists()  # the stale lock was taken over, then released
    # a case named "nan" stays a name in the console table, results.csv and summary.md
    assert "\nnan " in first.stdout or "| nan |" in first.stdout, first.stdout
    frame = pd.read_csv(tmp_path / "r1" / "results.csv", keep_default_na=False)
    assert (frame.case == "nan").sum() == 2
    assert "nan" in (tmp_path / "r1" / "summary.md").read_text(encoding="utf-8")
    # the cache is per-user, outside the run directory, and shared by the next run
    assert not (tmp_path / "r1" / "cache").exists()
    assert {r["backend_cache"] for r in rows if r["backend"] == "torchscript"} == {"miss"}

    _plant(user_cache)
    second = run_cli(
        "run",
        "--case-file",
        HOSTILE,
        "--suite",
        "names",
        "--out",
        tmp_path / "r2",
        "--backend",
        "torchscript",
        *QUICK,
    )
    assert second.returncode == 0, second.stderr
    again = {r["case"]: r for r in read_rows(tmp_path / "r2")}
    genuine = {r["case"]: r["output_digest"] for r in rows if r["backend"] == "torchscript"}
    assert {c: r["output_digest"] for c, r in again.items()} == genuine
    assert {r["status"] for r in again.values()} == {"pass"}
    assert again["../../../../evil"]["backend_cache"] == "rebuilt (digest mismatch)"
    assert again["a/b"]["backend_cache"] == "rebuilt (untrusted)"
    assert again["nan"]["backend_cache"] == "hit"


def test_a_folder_where_a_cached_program_belongs_is_removed_and_rebuilt(tmp_path):
    pytest.importorskip("executorch.runtime")
    run = ("run", "--case-file", TINY, "--suite", "tiny", "--case", "tiny_linear")
    args = (*run, "--backend", "executorch", *QUICK, "--rounds", "1", "--quiet")
    args += ("--cache-dir", str(tmp_path / "cache"))
    first = run_cli(*args, "--out", tmp_path / "r1")
    assert first.returncode == 0, first.stderr
    (pte,) = (tmp_path / "cache" / "artifacts" / "executorch").glob("*.pte")
    pte.unlink()
    (pte / "inside").mkdir(parents=True)  # a folder where the .pte belongs
    again = run_cli(*args, "--out", tmp_path / "r2")
    assert again.returncode == 0, again.stderr
    (row,) = read_rows(tmp_path / "r2")
    assert row["status"] == "pass", row.get("reason")
    assert row["backend_cache"] == "rebuilt (untrusted)"
    assert pte.is_file()  # the folder is gone: later runs are served the rebuilt program


def test_an_unwritable_cache_directory_is_one_line(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for bad in (blocker, blocker / "sub"):
        line = usage_error(
            capsys,
            "run",
            "--case-file",
            TINY,
            "--suite",
            "tiny",
            "--cache-dir",
            bad,
            "--out",
            tmp_path / "o",
            *QUICK,
        )
        assert "--cache-dir" in line and str(blocker) in line
    monkeypatch.setenv(cache.CACHE_ENV, str(blocker))
    line = usage_error(
        capsys, "run", "--case-file", TINY, "--suite", "tiny", "--out", tmp_path / "o", *QUICK
    )
    assert cache.CACHE_ENV in line


def test_default_cache_directory_follows_the_os(monkeypatch, tmp_path):
    monkeypatch.delenv(cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    expected = {
        "win32": tmp_path / "local" / "torchparity" / "Cache",
        "darwin": Path.home() / "Library" / "Caches" / "torchparity",
    }
    assert cache.default_cache_dir() == expected.get(sys.platform, tmp_path / "xdg" / "torchparity")
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "mine"))
    assert cache.default_cache_dir() == tmp_path / "mine"


# -- a run directory is data: resume runs only what the user names again


def _resumable(out: Path, marker: Path, tmp_path: Path) -> Path:
    """A downloaded run directory whose run.json names a case file that would
    write ``marker`` when executed."""
    evil = tmp_path / "evil_cases.py"
    evil.write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n", encoding="utf-8"
    )
    RunDir(out).create().write_selection(
        {
            "suite": "tiny",
            "case": ["tiny_linear"],
            "backend": ["eager"],
            "device": ["cpu"],
            "precision": ["fp32", "fp64"],
            "min_time": 0.01,
            "isolate": False,
            "plugins": [["file", str(TINY.resolve())], ["file", str(evil.resolve())]],
        }
    )
    return evil


def test_resume_does_not_execute_what_run_json_names(tmp_path, capsys):
    out, marker = tmp_path / "downloaded", tmp_path / "marker"
    evil = _resumable(out, marker, tmp_path)
    line = usage_error(capsys, "run", "--resume", "--out", out, "--case-file", TINY)
    assert f"--case-file {evil.resolve()}" in line and "--trust-run-plugins" in line
    assert not marker.exists()
    (out / "run.json").write_text('{"backend": 3}', encoding="utf-8")
    assert "'backend' has the wrong shape" in usage_error(capsys, "run", "--resume", "--out", out)
    (out / "run.json").write_text("[1, 2]", encoding="utf-8")
    assert "JSON object" in usage_error(capsys, "run", "--resume", "--out", out)


def test_resume_after_a_torn_utf8_tail_stamps_rows_where_they_ran(tmp_path, capsys):
    out = tmp_path / "run"
    _resumable(out, tmp_path / "marker", tmp_path)
    selection = RunDir(out).read_selection()
    selection["plugins"] = selection["plugins"][:1]
    RunDir(out).write_selection(selection)
    write_env(out, {"host": "first-host", "os": "Plan9", "torch": "0.0", "run_id": "run"})
    done = {
        "case": "tiny_linear",
        "kind": "model",
        "suite": "tiny",
        "device": "cpu",
        "precision": "fp64",
        "backend": "eager",
        "status": "pass",
        "reason": "",
        "cell_id": "tiny_linear|cpu|fp64|eager",
        "host": "first-host",
    }
    write_rows(out, [done, {**done, "cell_id": "x", "case": "ünïcode"}])
    with open(out / "results.jsonl", "r+b") as fh:  # a middle line damaged, a tail torn in 'ü'
        data = fh.read().split(b"\n")
        fh.seek(0)
        fh.write(b"\n".join([data[0], b"\xff\xfe garbage", data[1][:12]]))
        fh.truncate()
    for command in (["report", out], ["compare", out, out]):
        assert main([str(a) for a in command]) == 0
        assert "line(s) 2" in capsys.readouterr().err
    resumed = run_cli("run", "--resume", "--out", str(out), "--case-file", str(TINY), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    rows = {r["precision"]: r for r in read_rows(out)}
    assert set(rows) == {"fp32", "fp64"} and rows["fp32"]["status"] == "pass"
    assert rows["fp64"]["host"] == "first-host" and rows["fp32"]["host"] not in ("first-host", None)
    assert rows["fp32"]["os"] != "Plan9"


# -- one run at a time per directory; a timeout takes the case's processes with it


def test_second_run_into_a_held_directory_names_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": "2026-01-01T00:00:00+00:00",
    }
    (out / "run.lock").write_text(json.dumps(holder), encoding="utf-8")
    line = usage_error(capsys, "run", "--case-file", TINY, "--suite", "tiny", "--out", out, *QUICK)
    assert f"process {os.getpid()}" in line and socket.gethostname() in line
    assert not (out / "results.jsonl").exists()


def _stale_lock(run_dir: Path) -> None:
    """The lock a run killed with -9 leaves behind."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir.mkdir(parents=True)
    lock = {"pid": dead.pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00+00:00"}
    (run_dir / "run.lock").write_text(json.dumps(lock), encoding="utf-8")


@pytest.mark.slow
def test_two_runs_sharing_a_cache_race_cleanly(tmp_path):
    args = [
        "run",
        "--case-file",
        str(TINY),
        "--suite",
        "tiny",
        "--case",
        "tiny_linear",
        "--quiet",
        "--precision",
        "fp32,fp64,fp16,bf16",
        "--device",
        "cpu",
        "--min-time",
        "0.01",
        "--no-isolate",
        "--backend",
        "eager,torchscript",
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    procs = [
        start_cli(*args, "--out", str(tmp_path / n), stderr=subprocess.PIPE, text=True)
        for n in "ab"
    ]
    for proc in procs:
        assert proc.wait(300) == 0, proc.stderr.read()
    for name in "ab":
        rows = read_rows(tmp_path / name)
        assert len(rows) == 8 and not [r["reason"] for r in rows if r["status"] == "error"]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="process groups are POSIX")
def test_timeout_kills_the_processes_a_case_started(tmp_path):
    psutil = pytest.importorskip("psutil")
    pid_file = tmp_path / "child.pid"
    proc = run_cli(
        "run",
        "--case-file",
        str(HOSTILE),
        "--suite",
        "spawner",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--timeout",
        "5",
        "--quiet",
        "--out",
        str(tmp_path / "run"),
        env={"TORCHPARITY_TEST_CHILD_PID": str(pid_file)},
        timeout=240,
    )
    # (a surviving child holds the CLI's stdout open: run_cli would wait for it, and time out)
    assert proc.returncode == 0, proc.stderr
    assert read_rows(tmp_path / "run")[0]["status"] == "timeout"
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if psutil.Process(child).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    else:
        psutil.Process(child).kill()
        pytest.fail("the case's child process outlived the timeout")


# -- bad input: one line, exit 2, no traceback


def test_bad_numbers_and_paths_are_refused_at_the_parser(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run = ["run", "--case-file", TINY, "--suite", "tiny"]
    out = ("--out", tmp_path / "o")
    for option, value in [
        ("--timeout", "inf"),
        ("--timeout", "nan"),
        ("--timeout", "0"),
        ("--min-time", "0"),
        ("--min-time", "nan"),
        ("--threads", "0"),
    ]:
        assert option in usage_error(capsys, *run, *out, option, value)
    assert "not a directory" in usage_error(capsys, *run, "--out", blocker, *QUICK)
    assert "not writable" in usage_error(capsys, *run, "--out", blocker / "sub", *QUICK)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "source, message",
    [
        ("def broken(:\n", "line 1: SyntaxError"),
        ("import torch\nraise ValueError('no GPU here')\n", "line 2: ValueError: no GPU here"),
        (
            "from torchparity import register_model\nimport torch\nfor _ in range(2):\n"
            "    register_model('hostile_twice', torch.nn.Identity, lambda g, b: (g.normal(b, 2),))\n",
            "'hostile_twice' is registered twice in the same file",
        ),
        ("import sys\nsys.exit(3)\n", "line 2: SystemExit: 3"),
        (
            "import torch\nfrom torchparity import register_model\n"
            "register_model(123, torch.nn.Identity, lambda g, b: (g.normal(b, 2),))\n",
            "a case name must be non-empty text, not 123",
        ),
    ],
)
def test_case_file_errors_name_the_file_and_line(tmp_path, capsys, source, message):
    path = tmp_path / "user_cases.py"
    path.write_text(source, encoding="utf-8")
    line = usage_error(capsys, "list", "--case-file", path)
    assert str(path) in line and message in line


def test_a_clash_between_two_files_names_both(tmp_path, capsys):
    paths = [tmp_path / "first.py", tmp_path / "second.py"]
    for path in paths:
        path.write_text(
            "from torchparity import register_model\nimport torch\nregister_model("
            "'hostile_clash', torch.nn.Identity, lambda g, b: (g.normal(b, 2),))\n"
        )
    line = usage_error(capsys, "list", "--case-file", paths[0], "--case-file", paths[1])
    assert all(str(p) in line for p in paths)


def _two_runs(tmp_path: Path) -> tuple[Path, Path]:
    row = {
        "case": "<img src=x onerror=alert(1)>",
        "kind": "model",
        "suite": "s",
        "device": "cpu",
        "precision": "fp32",
        "backend": "eager",
        "status": "pass",
        "reason": "",
        "cell_id": "c1",
        "output_file": "../../secret.npz",
    }
    base, cur = tmp_path / "base", tmp_path / "cur"
    write_rows(base, [row, {**row, "cell_id": "c2", "output_file": "fifo.npz"}])
    write_rows(
        cur,
        [
            {**row, "status": "fail", "reason": "<!-- ![x](http://evil/x.png)"},
            {**row, "cell_id": "c2", "output_file": "truncated.npz"},
        ],
    )
    for run in (base, cur):
        write_env(run, {"host": run.name, "os": "Linux", "torch": "2", "fingerprint": "f"})
        (run / "outputs").mkdir()
    (tmp_path / "secret.npz").write_bytes(b"PK")
    os.mkfifo(base / "outputs" / "fifo.npz") if hasattr(os, "mkfifo") else None
    (cur / "outputs" / "truncated.npz").write_bytes(b"PK\x03\x04trunc")
    return base, cur


def test_compare_markdown_is_inert_and_merges_never_follow_row_paths(tmp_path):
    base, cur = _two_runs(tmp_path)
    assert main(["compare", str(base), str(cur), "--fail-on", "status"]) == 1
    md = (cur / "compare.md").read_text(encoding="utf-8")
    # every < and ! [ is backslash-escaped: shown as text, never markup
    assert "- " in md and not re.search(r"(?<!\\)<(img|!--)|(?<!\\)!\[", md)
    merged = run_cli("report", str(base), str(cur), "--out", str(tmp_path / "merged"), timeout=120)
    assert merged.returncode == 0 and "Traceback" not in merged.stderr, merged.stderr


def test_damaged_run_directories_are_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    write_rows(run, [{"cell_id": "c", "case": "x", "status": "pass", "latency_ms_median": "fast"}])
    assert "latency_ms_median" in usage_error(capsys, "report", run)
    (run / "results.jsonl").write_bytes(b"\x00\xff" * 100)
    write_env(run, {})
    (run / "env.json").write_text('["not", "an", "object"]', encoding="utf-8")
    assert "JSON object" in usage_error(capsys, "report", run)
    RunDir(run).write_selection({"suite": "smoke", "backend": ["eager"], "device": ["cpu"]})
    assert "JSON object" in usage_error(capsys, "run", "--resume", "--out", run)


def test_a_huge_exception_message_is_bounded(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "run", "--case-file", str(HOSTILE), "--suite", "loud", "--out", str(out), "--quiet", *QUICK
    )
    assert proc.returncode == 0, proc.stderr
    (row,) = read_rows(out)
    assert row["status"] == "error" and len(row["reason"]) < 1000
    assert (out / "results.jsonl").stat().st_size < 100_000
    assert (out / "report.html").stat().st_size < 2_000_000


def test_report_files_are_replaced_not_written_through(tmp_path, capsys):
    run = tmp_path / "run"
    write_rows(
        run,
        [
            {
                "cell_id": "c",
                "case": "x",
                "kind": "model",
                "suite": "s",
                "device": "cpu",
                "precision": "fp32",
                "backend": "eager",
                "status": "pass",
                "reason": "",
            }
        ],
    )
    outside = tmp_path / "outside.html"
    outside.write_text("keep", encoding="utf-8")
    try:
        (run / "report.html").symlink_to(outside)
    except OSError:
        pytest.skip("no symlinks here")
    assert main(["report", str(run)]) == 0
    assert outside.read_text(encoding="utf-8") == "keep" and not (run / "report.html").is_symlink()


def test_list_into_a_closed_pipe_is_quiet():
    proc = subprocess.Popen(
        cli_command("list", "cases"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env()
    )
    proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    assert proc.wait(120) == 0
    assert b"Traceback" not in proc.stderr.read()


def test_fuzz_reproducer_survives_quotes_in_the_path(tmp_path, capsys):
    from torchparity.fuzz import properties as fuzz

    directory = tmp_path / 'it\'s "quoted"' if os.name != "nt" else tmp_path / "it's"
    record = {
        "op": "neg",
        "backend": "eager",
        "precision": "fp32",
        "device": "cpu",
        "_inputs": [torch.arange(40, dtype=torch.float32)],
    }
    record["inputs"] = fuzz._save_inputs(record, directory, "neg|eager")
    command = fuzz.reproducer(record)
    exec(compile(command, "<reproducer>", "exec"), {})  # replays: the .npy path survived quoting
    assert "neg on eager/cpu/fp32: agrees" in capsys.readouterr().out


@pytest.mark.slow
def test_library_chatter_goes_to_the_worker_log_not_the_console(tmp_path):
    """Quiet by default: warnings, prints and C++-level writes of a worker
    land in RUN_DIR/worker.log; the console shows the run's own lines."""
    out = tmp_path / "run"
    proc = run_cli(
        "run",
        "--case-file",
        str(HOSTILE),
        "--suite",
        "chatty",
        "--backend",
        "eager",
        "--precision",
        "fp32",
        "--device",
        "cpu",
        "--min-time",
        "0.001",
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CHATTY" not in proc.stdout + proc.stderr
    log = (out / "worker.log").read_text(encoding="utf-8")
    for line in ("CHATTY-WARNING", "CHATTY-STDOUT", "CHATTY-FD2"):
        assert line in log
    assert [r["status"] for r in read_rows(out)] == ["pass"]


# -- exits that tell the truth


@pytest.mark.parametrize(
    "how, code, message",
    [
        ("sys.exit", 1, "called sys.exit(0) or os._exit in this process (--no-isolate)"),
        ("os._exit", 1, "called sys.exit(0) or os._exit in this process (--no-isolate)"),
        ("interrupt", 130, "interrupted: stopped during"),
    ],
)
def test_a_model_ending_the_process_under_no_isolate_is_a_clear_exit(tmp_path, how, code, message):
    out = tmp_path / "run"
    proc = run_cli(
        "run",
        "--case-file",
        str(HOSTILE),
        "--suite",
        "exits",
        "--out",
        str(out),
        "--quiet",
        *QUICK,
        env={"TORCHPARITY_TEST_EXIT": how},
    )
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and "--resume" in proc.stderr, proc.stderr
    assert [r["case"] for r in read_rows(out)] == ["exits-calm"]  # the finished row is kept


def test_no_isolate_refuses_a_timeout_it_cannot_honour(tmp_path, capsys):
    run = ["run", "--case-file", TINY, "--suite", "tiny", "--out", tmp_path / "o", *QUICK]
    line = usage_error(capsys, *run, "--timeout", "5")
    assert "--timeout needs crash isolation" in line and "--no-isolate" in line
    assert not (tmp_path / "o").exists()


def test_paths_of_the_wrong_kind_are_one_line(tmp_path, capsys):
    base, cur = _two_runs(tmp_path)
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    assert "is a directory" in usage_error(capsys, "run", "--case-file", tmp_path)
    assert "is not a directory" in usage_error(capsys, "report", cur, "--out", blocker)
    assert "is not a directory" in usage_error(capsys, "compare", base, cur, "--out", blocker)
    assert "is a directory" in usage_error(
        capsys, "export", cur, "--format", "pytest-benchmark", "--out", tmp_path
    )
    assert blocker.read_text(encoding="utf-8") == "x"
