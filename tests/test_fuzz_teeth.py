"""The fuzzer has teeth: deliberately wrong backends (tests/data/fuzz_backends.py)
are caught within the ci profile, recorded with a shrunk example and a
reproducer that replays; honest ones are not flagged."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import read_rows
from torchparity.cases.case import CASES, load_all
from torchparity.fuzz import properties as fuzz

PLUGIN = Path(__file__).parent / "data" / "fuzz_backends.py"


@pytest.fixture(scope="module", autouse=True)
def _loaded() -> None:
    load_all([("file", str(PLUGIN.resolve()))])


def _fuzz(op: str, backend: str, tmp_path: Path) -> fuzz.TargetResult:
    target = fuzz.Target(CASES[op], backend, "cpu", "fp32")
    return fuzz.fuzz_target(target, fuzz.PROFILES["ci"], out_dir=tmp_path)


@pytest.mark.parametrize(
    ("backend", "op"),
    [("test-ulp", "neg"), ("test-round-away", "round"), ("test-nan-number", "sin")],
)
def test_wrong_backend_is_caught_in_ci_profile(backend: str, op: str, tmp_path: Path) -> None:
    result = _fuzz(op, backend, tmp_path)
    assert result.row["status"] == "fail", result.row
    d = result.divergence
    assert d is not None and d["kind"] == "mismatch" and d["status"] == "new"
    assert d["inputs"] and d["actual"] and d["expected"]
    assert d["reproducer"].startswith(
        "import torch; from torchparity.fuzz.properties import replay;"
    )
    # bounded: the time budget draws more examples for a cheap backend, never past its cap
    assert result.row["examples"] <= fuzz.PROFILES["ci"].max_budget_examples * 2


def test_round_away_divergence_is_a_tie(tmp_path: Path) -> None:
    d = _fuzz("round", "test-round-away", tmp_path).divergence
    assert d is not None
    values = [v for item in d["inputs"] for v in _flat(item["values"])]
    assert any(abs(v) % 1 == 0.5 for v in values if isinstance(v, float)), values


def test_nan_number_divergence_names_nan(tmp_path: Path) -> None:
    d = _fuzz("sin", "test-nan-number", tmp_path).divergence
    assert d is not None and "NaN" in d["reason"]


@pytest.mark.parametrize(
    ("backend", "op"),
    [
        ("test-round-away", "sin"),
        ("test-nan-number", "bitwise_not"),
        ("test-ulp", "argmax"),
        ("eager", "round"),
        ("eager", "neg"),
    ],
)
def test_honest_pairs_pass(backend: str, op: str, tmp_path: Path) -> None:
    # Each wrong backend is harmless where its bug cannot show (no torch.round,
    # no float output): the fuzzer must not flag those.
    result = _fuzz(op, backend, tmp_path)
    assert result.row["status"] == "pass", result.row
    assert result.divergence is None


def _flat(values):
    if isinstance(values, list):
        for v in values:
            yield from _flat(v)
    else:
        yield values


def test_cli_records_divergences_and_strict(cli, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = cli(
        "fuzz",
        "--case-file",
        str(PLUGIN),
        "--backend",
        "test-round-away",
        "--op",
        "round",
        "--op",
        "round_known",
        "--strict",
        "--out",
        str(out),
    )
    assert proc.returncode == 1, proc.stderr
    rows = read_rows(out)
    status = {r["case"]: r["status"] for r in rows}
    assert status == {"round": "fail", "round_known": "xfail"}
    with open(out / "divergences.csv", encoding="utf-8") as fh:
        table = {r["op"]: r for r in csv.DictReader(fh)}
    assert table["round"]["status"] == "new" and table["round_known"]["status"] == "xfail"
    assert "example.org/round" in table["round_known"]["known"]
    assert (out / "divergences.jsonl").is_file() and (out / "summary.md").is_file()
    # The one-line reproducer replays the divergence on its own.
    replay = subprocess.run(
        [sys.executable, "-c", table["round"]["reproducer"]],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert replay.returncode == 0, replay.stderr
    assert '"kind": "mismatch"' in replay.stdout


def test_cli_known_divergence_does_not_fail_strict(cli, tmp_path: Path) -> None:
    proc = cli(
        "fuzz",
        "--case-file",
        str(PLUGIN),
        "--backend",
        "test-round-away",
        "--op",
        "round_known",
        "--strict",
        "--out",
        str(tmp_path / "run"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 xfail" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--profile", "nightly"], "valid: ci, dev, deep"),
        (["--op", "no_such_op*"], "no op matches"),
        (["--backend", "nope"], "unknown backend"),
        (["--examples", "0"], "--examples"),
    ],
)
def test_cli_fuzz_usage_errors(cli, args: list[str], message: str) -> None:
    proc = cli("fuzz", *args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
