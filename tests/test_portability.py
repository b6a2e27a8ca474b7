"""Portability: every OS-specific branch runs here, whatever OS "here" is.

Covers the console encoding on Windows (cp1252), the spawn start method and
what crosses into a spawned worker, file encodings and line endings, names
that must be legal file names on Windows and distinct on case-insensitive
file systems, and environment.py's Linux / Darwin / Windows branches.
"""

from __future__ import annotations

import ctypes
import io
import os
import pickle
import platform
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.helpers import read_rows, write_env, write_rows
from torchparity._core import environment
from torchparity._core.console import make_robust
from torchparity.axes.matrix import Cell
from torchparity.cases import reference
from torchparity.cell.context import RunSettings
from torchparity.report.report import render
from torchparity.run.runner import new_run_id
from torchparity.run.worker import IsolatedExecutor, _describe_exit

# --- console encoding (a Windows console or pipe is often cp1252) -------------------


def test_robust_stream_replaces_what_cp1252_cannot_encode():
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="cp1252", errors="strict")
    with pytest.raises(UnicodeEncodeError):
        stream.write("drift ≈ 0 → pass\n")
        stream.flush()
    raw.seek(0), raw.truncate()
    make_robust(stream).write("drift ≈ 0 → pass, ß ok\n")
    stream.flush()
    assert raw.getvalue() == "drift ? 0 ? pass, ß ok\n".encode("cp1252")


CASE_FILE = """
import torch
from torchparity import register_model

register_model(
    "tiny_unicode", lambda: torch.nn.Linear(4, 2), lambda gen, batch: (gen.normal(batch, 4),),
    suites=["unicode"], description="fp64 ≈ reference → ok (µ, 中文)",
)
"""


def _cli_cp1252(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONIOENCODING": "cp1252"}  # what a Windows console gives
    env.pop("PYTHONUTF8", None)
    return subprocess.run(
        [sys.executable, "-m", "torchparity", *args], capture_output=True, env=env, timeout=300
    )


def test_cli_prints_non_ascii_on_a_cp1252_console(tmp_path):
    case_file = tmp_path / "unicode_cases.py"
    case_file.write_text(CASE_FILE, encoding="utf-8")
    listed = _cli_cp1252("list", "cases", "--suite", "unicode", "--case-file", str(case_file))
    assert listed.returncode == 0, listed.stderr.decode("cp1252", "replace")
    assert "fp64 ? reference ? ok (µ, ??)" in listed.stdout.decode("cp1252")
    # a usage error quoting the user's non-ASCII input is still one line, exit 2
    bad = _cli_cp1252("run", "--case-file", str(case_file), "--suite", "unicode", "--case", "ß≈*")
    lines = bad.stderr.decode("cp1252").strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1, lines
    assert "no case matches 'ß" in lines[0]  # stderr backslash-escapes the rest


CHATTY_CASE_FILE = """
import torch
from torchparity import register_model


class Chatty(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)

    def forward(self, x):
        print("forward ≈ →")  # user code printing non-ASCII
        return self.lin(x)


register_model("chatty", Chatty, lambda gen, batch: (gen.normal(batch, 4),), suites=["chatty"])
"""


@pytest.mark.slow
def test_a_model_printing_non_ascii_in_a_spawned_worker_on_cp1252_passes(tmp_path):
    case_file = tmp_path / "chatty_cases.py"
    case_file.write_text(CHATTY_CASE_FILE, encoding="utf-8")
    out = tmp_path / "run"
    proc = _cli_cp1252(
        "run",
        "--case-file",
        str(case_file),
        "--suite",
        "chatty",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--out",
        str(out),
        "--quiet",
        "--min-time",
        "0.01",
    )
    assert proc.returncode == 0, proc.stderr.decode("cp1252", "replace")
    row = read_rows(out)[0]
    assert row["status"] == "pass", row["reason"]  # was: error, UnicodeEncodeError


# --- process start method ------------------------------------------------------------


def test_workers_start_with_spawn_on_every_os():
    executor = IsolatedExecutor([], RunSettings(), timeout=5)
    assert executor._ctx.get_start_method() == "spawn"  # fork is not on Windows; macOS is unsafe


def test_what_a_spawned_worker_receives_pickles(tmp_path):
    # spawn sends arguments by pickle: settings, plugin specs and cells must round-trip
    settings = RunSettings(seed=3, cache_dir=tmp_path / "cache")
    cell = Cell("tiny_linear", "model", "tiny", "cpu", "fp32", "eager")
    plugins = [("file", str(tmp_path / "cases.py")), ("module", "torchparity.suites.models")]
    back = pickle.loads(pickle.dumps((settings, cell, plugins)))
    assert back == (settings, cell, plugins)


@pytest.mark.parametrize(
    "code, expected",
    [
        (None, "worker did not exit"),
        (-9, "worker killed by SIGKILL (exit code -9)"),
        (3, "worker exited with code 3"),
        (0xC0000005, "worker crashed with status 0xC0000005"),  # Windows access violation
        (0xC00000FD, "worker crashed with status 0xC00000FD"),  # Windows stack overflow
    ],
)
def test_worker_exit_codes_of_every_os_are_described(code, expected):
    assert _describe_exit(code) == expected


# --- files: UTF-8, LF, names legal everywhere ----------------------------------------


def test_run_files_are_utf8_with_lf_line_endings(tmp_path):
    row = {
        "case": "tiny_ü",
        "kind": "model",
        "suite": "s",
        "device": "cpu",
        "precision": "fp32",
        "backend": "eager",
        "status": "fail",
        "reason": "drift ≈ 1e-3 → over tolerance",
        "cell_id": "tiny_ü|cpu|fp32|eager",
        "max_rel_err": 1e-3,
    }
    write_rows(tmp_path, [row])
    write_env(tmp_path, {"os": platform.system(), "note": "µ"})
    render(read_rows(tmp_path), tmp_path, {"note": "µ"})
    written = sorted(p.name for p in tmp_path.iterdir())
    assert {"env.json", "results.jsonl", "results.csv", "summary.md", "report.html"} <= set(written)
    for name in written:
        data = (tmp_path / name).read_bytes()
        assert b"\r\n" not in data, f"{name} has CRLF line endings"
        data.decode("utf-8")  # strict: every file is UTF-8
    assert "drift ≈ 1e-3" in (tmp_path / "results.csv").read_text(encoding="utf-8")


def test_run_id_is_a_legal_file_name_on_windows():
    run_id = new_run_id()
    assert not re.search(r'[<>:"/\\|?*\s]', run_id), run_id


def test_reference_cache_keys_never_collide(tmp_path):
    # "pair/a" and "pair_a" sanitise to the same text; "MLP" and "mlp" are one
    # file on macOS and Windows. Each must still get its own reference.
    modules = {name: torch.nn.Linear(3, 2) for name in ("pair/a", "pair_a", "MLP", "mlp")}
    inputs = (torch.arange(6, dtype=torch.float64).reshape(2, 3),)
    expected = {}

    def case(name: str) -> SimpleNamespace:  # what the reference and its probe read of a case
        return SimpleNamespace(name=name, batch=2, extra={}, make_inputs=lambda gen, batch: inputs)

    for name, module in modules.items():
        expected[name] = reference.get_reference(
            case(name), module, inputs, tmp_path, case_print=name
        ).outputs[0]
    files = [p.name.lower() for p in (tmp_path / "reference").glob("*.pt")]  # not the .seal files
    assert len(set(files)) == 4, files  # distinct even ignoring case
    reference._MEMORY.clear()  # now read back from the files
    for name, module in modules.items():
        loaded = reference.get_reference(case(name), module, inputs, tmp_path, case_print=name)
        assert torch.equal(loaded.outputs[0], expected[name]), name


# --- environment.py: each OS branch ---------------------------------------------------


def test_cpu_model_linux_branch():
    model = environment._cpu_model("Linux")
    assert isinstance(model, str) and model
    if Path("/proc/cpuinfo").is_file():
        assert model in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")


def test_cpu_model_darwin_branch_reads_sysctl():
    def sysctl(argv, **kwargs):
        assert argv == ["sysctl", "-n", "machdep.cpu.brand_string"] and kwargs["text"]
        return subprocess.CompletedProcess(argv, 0, "Apple M3 Pro\n", "")

    assert environment._cpu_model("Darwin", run=sysctl) == "Apple M3 Pro"


def test_cpu_model_darwin_branch_falls_back_when_sysctl_fails_or_is_missing():
    fallback = platform.processor() or platform.machine()
    real = environment._cpu_model("Darwin")  # the real sysctl of this machine
    if platform.system() == "Darwin":
        assert real and real != "arm64"
    else:  # absent, or without the Darwin key: the fallback
        assert real == fallback

    def missing(argv, **kwargs):
        raise FileNotFoundError(argv[0])

    assert environment._cpu_model("Darwin", run=missing) == fallback


def test_memory_posix_branch_matches_sysconf():
    if not hasattr(os, "sysconf"):
        pytest.skip("no sysconf on this OS (Windows takes the GlobalMemoryStatusEx branch)")
    expected = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert environment._memory_bytes("Linux") == expected
    assert environment._memory_bytes("Darwin") == expected


def test_memory_windows_branch_struct_and_call():
    # The MEMORYSTATUSEX layout of the Win32 documentation, on any OS.
    assert ctypes.sizeof(environment.MemoryStatusEx) == 64
    assert environment.MemoryStatusEx.ullTotalPhys.offset == 8
    seen = {}

    # A C-callable stand-in for kernel32: the struct crosses a real ctypes call.
    @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(environment.MemoryStatusEx))
    def global_memory_status_ex(pointer):
        seen["dwLength"] = pointer.contents.dwLength
        pointer.contents.ullTotalPhys = 16 * 2**30
        return 1

    kernel32 = SimpleNamespace(GlobalMemoryStatusEx=global_memory_status_ex)
    assert environment._windows_memory_bytes(kernel32) == 16 * 2**30
    assert seen["dwLength"] == 64  # the API rejects a wrong dwLength

    failing = SimpleNamespace(
        GlobalMemoryStatusEx=ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.POINTER(environment.MemoryStatusEx)
        )(lambda p: 0)
    )
    assert environment._windows_memory_bytes(failing) is None


@pytest.mark.skipif(
    platform.system() != "Windows", reason="the real kernel32 exists only on Windows"
)
def test_memory_windows_branch_real_kernel32():
    assert environment._memory_bytes("Windows") > 2**30


def test_collect_on_this_os_fills_cpu_and_memory():
    env = environment.collect()
    assert env["cpu"] and env["memory_bytes"] and env["memory_bytes"] > 2**28
