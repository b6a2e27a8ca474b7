"""A machine's fault (full or read-only disk) is said in words and blamed on the environment."""

from __future__ import annotations

import errno

from torchparity._core.errors import MachineFault, error_fields, machine_fault
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
