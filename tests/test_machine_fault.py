"""A machine's fault (full or read-only disk) is said in words and blamed on the environment."""

from __future__ import annotations

import errno

import pytest

from tests.helpers import DATA, QUICK, Tmpfs, faulty_fs_missing, read_rows, run_on_faulty_fs
from torchparity._core.errors import MachineFault, error_fields, machine_fault
from torchparity._core.rundir import RunDir
from torchparity.verdicts import blame


def _raise(exc: BaseException) -> dict:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001 - the test inspects any error
        return error_fields(caught, "prepare")


def test_a_full_disk_behind_a_library_error_is_named_and_blamed_on_the_environment() -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/out/model.pte")
        except OSError as full:
            raise RuntimeError("basic_ios::clear: iostream error") from full
    except RuntimeError as exc:
        assert machine_fault(exc) == "the disk is full: /out/model.pte"
        fields = error_fields(exc, "prepare")
    assert fields["reason"].startswith("prepare: the disk is full: /out/model.pte")
    assert blame.classify("openvino", fields) == "environment"


def test_an_ordinary_error_is_no_machine_fault() -> None:
    fields = _raise(ValueError("shapes differ"))
    assert "machine_fault" not in fields
    assert blame.classify("openvino", fields) == "openvino"


def test_a_machine_fault_raised_by_torchparity_keeps_its_words() -> None:
    fields = _raise(MachineFault("npm could not reach the registry: npm error code ENOTFOUND"))
    assert (
        fields["reason"]
        == "prepare: MachineFault: npm could not reach the registry: npm error code ENOTFOUND"
    )
    assert blame.classify("onnxruntime-node", fields) == "environment"


# -- through the command line, on a real full or read-only file system ---------

MACHINE = DATA / "machine_cases.py"
needs_faulty_fs = pytest.mark.skipif(
    faulty_fs_missing() is not None, reason=str(faulty_fs_missing())
)


@needs_faulty_fs
def test_a_disk_that_fills_during_a_run_stops_it_in_one_line_keeping_whole_rows(tmp_path):
    disk, kept = tmp_path / "disk", tmp_path / "kept"
    proc = run_on_faulty_fs(
        [Tmpfs(disk, size="1m")],
        "run", "--case-file", str(MACHINE), "--suite", "machine-full", "--backend", "eager",
        *QUICK, "--cache-dir", str(tmp_path / "cache"), "--out", str(disk / "run"), "--quiet",
        keep=kept, env={"TORCHPARITY_TEST_FILL": str(disk / "filler")},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    results = disk / "run" / "results.jsonl"
    assert line.startswith(f"torchparity: error: the run stopped: the disk is full: {results}; ")
    assert line.endswith(f"finish with: torchparity run --resume --out {disk / 'run'}")
    # The row that did not fit is not there at all; the one before it is, whole.
    run = kept / "0" / "run"
    assert (run / "results.jsonl").read_bytes().endswith(b"\n")
    assert RunDir(run).damage_note() is None
    assert [r["case"] for r in read_rows(run)] == ["a_healthy"]


@needs_faulty_fs
def test_a_full_or_read_only_artifact_folder_is_the_environments_said_in_words(tmp_path):
    pytest.importorskip("openvino")
    pytest.importorskip("executorch.runtime")
    artifacts = tmp_path / "cache" / "artifacts"
    proc = run_on_faulty_fs(
        # The program fits none: 16 KiB for OpenVINO's IR and TorchScript's file (whose
        # writer in torch aborted the process), none for ExecuTorch's .pte.
        [
            Tmpfs(artifacts / "openvino", size="16k"),
            Tmpfs(artifacts / "torchscript", size="16k"),
            Tmpfs(artifacts / "executorch", read_only=True),
        ],
        "run", "--case-file", str(MACHINE), "--suite", "machine",
        "--backend", "openvino,torchscript,executorch",
        *QUICK, "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run"), "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = {r["backend"]: r for r in read_rows(tmp_path / "run")}
    full, read_only = "the disk is full", "read-only"
    for backend, fault in (("openvino", full), ("torchscript", full), ("executorch", read_only)):
        row = rows[backend]
        assert (row["status"], row["blame"]) == ("error", "environment"), row["reason"]
        assert fault in row["machine_fault"] and str(artifacts / backend) in row["machine_fault"]
    # OpenVINO's own line says only "iostream error": the cause is said first, its line kept.
    assert rows["openvino"]["reason"].startswith("prepare: MachineFault: the disk is full: ")
    assert "basic_ios::clear: iostream error" in rows["openvino"]["reason"]
