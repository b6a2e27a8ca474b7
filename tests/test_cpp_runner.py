"""The C++ runner: its tensor file format, its build (real cmake, real
compiler, once per test session), models through torchscript-cpp and aoti-cpp
on the real command line, and the rows when something is missing, does not
build or crashes. No time is asserted."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import torch

from tests.backend_runs import by_cell, explain, run_rows
from tests.helpers import DATA, TIMING_STATISTICS, expected_timing, read_rows, run_cli
from torchparity.backends import native_build, tensor_io

NATIVE = DATA / "native_cases.py"
CASES = ("--case-file", str(NATIVE), "--suite", "native", "--precision", "fp32")


def _samples() -> list[torch.Tensor]:
    return [
        torch.randn(2, 3),
        torch.arange(12, dtype=torch.int64).reshape(3, 4),  # token ids
        torch.tensor([True, False, True]),
        torch.randn(4, 5).to(torch.bfloat16),
        torch.randn(3).half(),
        torch.tensor(7, dtype=torch.int32),  # 0-d
        torch.empty(0, 5),  # no elements
        torch.randn(3, 4).t(),  # not contiguous
        torch.randn(2, dtype=torch.complex64),
        torch.arange(-3, 3, dtype=torch.int8),
        torch.randn(1, 1, 1, 2, dtype=torch.float64),
    ]


def _assert_same(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert (g.dtype, g.shape) == (w.dtype, w.shape)
        assert torch.equal(g, w)


def test_format_round_trips_shapes_dtypes_and_names(tmp_path):
    tensors, names = _samples(), [f"leaf{i}" for i in range(11)]
    names[0] = "[0]['logits'] é"  # UTF-8 names
    tensor_io.save(tmp_path / "t.bin", tensors, names)
    got_names, got = tensor_io.load(tmp_path / "t.bin")
    assert got_names == names
    _assert_same(got, tensors)
    got[1][0, 0] = 99  # owned memory, not a view of the file's bytes
    assert tensors[1][0, 0] == 0


def test_format_header_is_plain_bytes():
    data = tensor_io.encode([torch.tensor([1.0, 2.0])], ["x"])
    assert data[:8] == b"TPTENSOR"
    assert data[-8:] == torch.tensor([1.0, 2.0]).numpy().tobytes()  # raw float32, little-endian
    assert len(data) == 8 + 4 + 4 + 4 + 1 + 4 + 8 + 8 + 8


@pytest.mark.parametrize("mutate", ["truncate", "magic", "dtype", "trailing"])
def test_format_rejects_damaged_files(mutate):
    data = bytearray(tensor_io.encode([torch.ones(2, 2)], ["x"]))
    if mutate == "truncate":
        data = data[:-3]
    elif mutate == "magic":
        data[:8] = b"PK\x03\x04xxxx"
    elif mutate == "dtype":
        data[8 + 8 + 4 + 1] = 200  # after header, name length and name
    else:
        data += b"\0"
    with pytest.raises(tensor_io.TensorFormatError):
        tensor_io.decode(bytes(data))


def test_runner_builds_once_and_is_cached(native_runner):
    assert native_runner.built and native_runner.binary.is_file()
    assert native_runner.binary.name == native_build.EXE
    assert (native_runner.directory / "info.json").is_file()
    again = native_build.ensure_runner(native_runner.directory.parent.parent)
    assert not again.built and again.binary.read_bytes() == native_runner.binary.read_bytes()
    name = native_runner.directory.name
    assert name.startswith(torch.__version__) and sys.platform in name
    version = subprocess.run(
        [str(native_runner.binary), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_runner_env(),
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.split()[0] == torch.__version__.split("+")[0]


def _runner_env() -> dict[str, str]:
    from torchparity.backends.native_client import _runner_env

    return _runner_env()


def test_cpp_reads_and_writes_the_format(native_runner, tmp_path):
    tensors = _samples()
    tensor_io.save(tmp_path / "in.bin", tensors, [str(i) for i in range(len(tensors))])
    proc = subprocess.run(
        [
            str(native_runner.binary),
            "--roundtrip",
            str(tmp_path / "in.bin"),
            str(tmp_path / "out.bin"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=_runner_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out.bin").read_bytes() == (tmp_path / "in.bin").read_bytes()
    _assert_same(tensor_io.load(tmp_path / "out.bin")[1], tensors)


def test_cpp_rejects_bytes_after_the_last_entry_as_python_does(native_runner, tmp_path):
    (tmp_path / "in.bin").write_bytes(tensor_io.encode([torch.ones(2)], ["x"]) + b"\0")
    proc = subprocess.run(
        [
            str(native_runner.binary),
            "--roundtrip",
            str(tmp_path / "in.bin"),
            str(tmp_path / "out.bin"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=_runner_env(),
    )
    assert proc.returncode != 0 and "bytes after the last entry" in proc.stderr + proc.stdout


def _check_cpp_row(row: dict, python_row: dict) -> None:
    assert row["status"] == "pass", row["reason"]
    assert row["backend_python_max_abs_diff"] == 0.0
    assert (
        row["eager_max_abs_diff"] == python_row["eager_max_abs_diff"]
    )  # same artifact, same numbers
    assert row["output_digest"] == python_row["output_digest"]
    assert row["leaf_names"] == python_row["leaf_names"]
    assert row["backend_libtorch"] == torch.__version__.split("+")[0]
    assert row["backend_compiler"]
    assert row["latency_ms_median"] > 0 and len(row["samples_ms"]) >= 7
    # the runner's own samples, summarised by the same statistics as every path
    assert {k: row[k] for k in TIMING_STATISTICS} == pytest.approx(expected_timing(row))
    assert row["backend_artifact_of"] == python_row["backend"]


def test_torchscript_cpp_runs_the_torchscript_file(native_runner, tmp_path):
    rows = run_rows(
        tmp_path / "run",
        *CASES,
        "--backend",
        "torchscript,torchscript-cpp",
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    cells = by_cell(rows)
    python = cells[("native_tagger", "fp32", "torchscript")]
    assert python["status"] == "pass", explain(rows)
    cpp = cells[("native_tagger", "fp32", "torchscript-cpp")]
    _check_cpp_row(cpp, python)
    assert cpp["backend_cache"] == "hit"  # one file for both backends, built once
    assert [p.name for p in (tmp_path / "cache" / "artifacts").iterdir()] == ["torchscript"]
    assert len(list((tmp_path / "cache" / "artifacts" / "torchscript").glob("*.pt"))) == 1
    summary = (tmp_path / "run" / "summary.md").read_text(encoding="utf-8")
    assert "## Same artifact, Python vs C++" in summary  # latencies side by side
    assert "| native_tagger | cpu | fp32 |" in summary.split("Python vs C++")[1]
    assert "Python vs C++" in (tmp_path / "run" / "report.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_aoti_cpp_runs_the_aoti_package(native_runner, tmp_path):
    rows = run_rows(
        tmp_path / "run",
        *CASES,
        "--backend",
        "aoti-cpp,aoti",
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    cells = by_cell(rows)
    python = cells[("native_tagger", "fp32", "aoti")]
    assert python["status"] == "pass", explain(rows)
    cpp = cells[("native_tagger", "fp32", "aoti-cpp")]
    _check_cpp_row(cpp, python)
    assert len(list((tmp_path / "cache" / "artifacts" / "aoti").glob("*.pt2"))) == 1


def test_missing_toolchain_is_a_skip_naming_it(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = run_cli(
        "run",
        *CASES,
        "--device",
        "cpu",
        "--backend",
        "torchscript-cpp",
        "--no-isolate",
        "--quiet",
        "--out",
        str(tmp_path / "run"),
        env={"PATH": str(empty), "CXX": "", native_build.ENV_BINARY: ""},
    )
    assert proc.returncode == 0, proc.stderr
    (row,) = read_rows(tmp_path / "run")
    assert row["status"] == "skip"
    assert "cmake" in row["reason"], row["reason"]
    if sys.platform != "win32":  # Windows finds Visual Studio without PATH (vswhere)
        assert "compiler" in row["reason"], row["reason"]


def test_build_failure_is_an_error_with_the_compilers_line(native_runner, tmp_path, monkeypatch):
    source = tmp_path / "broken"
    shutil.copytree(native_build.SOURCE_DIR, source)
    (source / "runner.cpp").write_text(
        "int main() { return undeclared_thing; }\n", encoding="utf-8"
    )
    monkeypatch.setenv(native_build.ENV_SOURCE, str(source))
    rows = run_rows(tmp_path / "run", *CASES, "--backend", "torchscript-cpp")
    (row,) = rows
    assert row["status"] == "error"
    assert "NativeBuildError" in row["reason"] and "undeclared_thing" in row["reason"], row[
        "reason"
    ]
    assert row["error_stage"] == "prepare"


@pytest.mark.parametrize("where, stage", [("run", "call"), ("load", "prepare")])
def test_runner_crash_is_an_error_row_and_the_run_goes_on(
    native_runner, tmp_path, monkeypatch, where, stage
):
    monkeypatch.setenv("TORCHPARITY_RUNNER_FAULT", f"abort-on-{where}")  # the real binary aborts
    rows = run_rows(tmp_path / "run", *CASES, "--backend", "torchscript-cpp,torchscript")
    cells = by_cell(rows)
    row = cells[("native_tagger", "fp32", "torchscript-cpp")]
    assert row["status"] == "error" and row["error_stage"] == stage, row["reason"]
    assert "NativeRunnerCrash" in row["reason"] and f"during {where}" in row["reason"]
    assert ("SIGABRT" in row["reason"]) if sys.platform != "win32" else ("code" in row["reason"])
    assert cells[("native_tagger", "fp32", "torchscript")]["status"] == "pass"


@pytest.mark.slow
def test_cpp_backends_pass_where_python_passes(native_runner, tmp_path):
    """The smoke models in fp32 and bf16: every cell the Python backend passes,
    its C++ counterpart passes too, on the same numbers as the Python run."""
    rows = run_rows(
        tmp_path / "run",
        "--suite",
        "smoke",
        "--precision",
        "fp32,bf16",
        "--backend",
        "torchscript,torchscript-cpp,aoti,aoti-cpp",
        timeout=1800,
    )
    cells = by_cell(rows)
    for (case, precision, backend), row in cells.items():
        if backend.endswith("-cpp") or row["status"] != "pass":
            continue
        cpp = cells[(case, precision, f"{backend}-cpp")]
        assert cpp["status"] == "pass", explain([cpp])
        assert cpp["backend_python_max_abs_diff"] == 0.0, explain([cpp])


def test_runner_error_names_the_libtorch_error(native_runner, tmp_path):
    """An artifact that fails inside libtorch: the runner answers with the
    line that says why (not TorchScript's "The following operation failed")
    and keeps serving."""
    from torchparity.backends.native_client import NativeRunner, NativeRunnerError

    path = tmp_path / "linear.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 2)), str(path))
    runner = NativeRunner(native_runner.binary, "torchscript", path, torch.device("cpu"), 1, 1)
    try:
        with pytest.raises(NativeRunnerError, match=r"^RuntimeError: .*"):
            runner.call((torch.ones(4, 5),))  # wrong width
        _, (out,) = runner.call((torch.ones(4, 3),))
        assert out.shape == (4, 2)
    finally:
        runner.close()


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="a POSIX shell wrapper")
def test_a_planted_runner_is_rebuilt_and_never_executed(native_runner, tmp_path):
    """A wrapper script in place of the cached runner (its old seal left, so
    the digest no longer matches): the runner is rebuilt (minutes) and the
    cell passes; the wrapper never ran."""
    planted = native_runner.directory / native_build.EXE
    marker = tmp_path / "planted-ran"
    planted.write_text(f"#!/bin/sh\necho ran > '{marker}'\nexec /bin/false\n", encoding="utf-8")
    planted.chmod(0o755)
    rows = run_rows(tmp_path / "run", *CASES, "--backend", "torchscript-cpp")
    (row,) = rows
    assert not marker.exists(), "the planted runner ran"
    assert row["status"] == "pass", explain(rows)
    assert row["backend_runner_build"].startswith("rebuilt (digest mismatch)"), row
    again = native_build.ensure_runner(native_runner.directory.parent.parent)  # sealed: used
    assert not again.built and again.binary.read_bytes() == planted.read_bytes()


def test_count_needs_valgrind_and_says_so(native_runner, tmp_path, monkeypatch):
    """Outside valgrind the runner refuses to count (rather than answer a
    count of nothing), says whether it was built to count, and serves on."""
    from torchparity.backends.native_client import ENV_CALLGRIND, NativeRunner, NativeRunnerError

    monkeypatch.delenv(ENV_CALLGRIND, raising=False)
    path = tmp_path / "linear.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(3, 2)), str(path))
    runner = NativeRunner(native_runner.binary, "torchscript", path, torch.device("cpu"), 1, 1)
    try:
        built_to_count = native_build.callgrind_include_dir() is not None
        assert runner.info["callgrind"] is built_to_count
        why = "not running under valgrind" if built_to_count else "without valgrind's callgrind.h"
        with pytest.raises(NativeRunnerError, match=why):
            runner.count((torch.ones(4, 3),), 2, 5, 0.5)
        _, (out,) = runner.call((torch.ones(4, 3),))
        assert out.shape == (4, 2)
    finally:
        runner.close()


@pytest.mark.slow
def test_instruction_counts_of_cpp_cells_in_the_runners_own_process(native_runner, tmp_path):
    """``--count-instructions`` counts a torchscript-cpp cell inside the C++
    runner (started under callgrind by the run's counting process): the same
    columns as the Python cell of the same TorchScript file, a count of the
    same order (the Python side adds its interpreter's work per call)."""
    from tests.backend_runs import TINY
    from torchparity.run import instructions

    missing = instructions.unavailable("cpu") or native_build.callgrind_missing()
    if missing:
        pytest.skip(missing)
    rows = run_rows(
        tmp_path / "run",
        *("--case-file", str(TINY), "--suite", "tiny", "--case", "tiny_linear"),
        *("--backend", "torchscript,torchscript-cpp", "--precision", "fp32", "--rounds", "1"),
        *("--cache-dir", str(tmp_path / "cache"), "--count-instructions"),
        timeout=3000,
    )
    cells = by_cell(rows)
    python = cells[("tiny_linear", "fp32", "torchscript")]
    cpp = cells[("tiny_linear", "fp32", "torchscript-cpp")]
    assert cpp["status"] == "pass", explain(rows)
    for row in (python, cpp):
        assert row["instructions_per_call"] > 1000, row.get("instructions_skip_reason")
        assert row["instructions_calls"] == instructions.CALLS
        assert "kernels without FMA: torch's DEFAULT" in row["instructions_method"]
        assert row["instructions_s"] > 0
    ratio = cpp["instructions_per_call"] / python["instructions_per_call"]
    print(
        f"instructions per call: C++ {cpp['instructions_per_call']:.0f}, "
        f"Python {python['instructions_per_call']:.0f} (C++/Python {ratio:.2f}); "
        f"counting added {cpp['instructions_s']:.1f} s to the C++ cell"
    )
    assert 0.1 < ratio < 10, (cpp["instructions_per_call"], python["instructions_per_call"])
