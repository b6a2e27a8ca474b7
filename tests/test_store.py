"""The embedded results store: real run directories in, every row kept once."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys

import pytest

from tests.conftest import SAMPLE_RUN_CELLS
from tests.helpers import run_cli
from torchparity.store.local import SCHEMA_VERSION, StoreError, add_run, stored_rows


def test_add_keeps_every_row_once(sample_run, tmp_path):
    store = tmp_path / "store.sqlite"
    assert add_run(store, sample_run) is True
    assert add_run(store, sample_run) is False  # the same run twice is a no-op
    rows = stored_rows(store)
    assert len(rows) == SAMPLE_RUN_CELLS
    assert all(r["env"] for r in rows)  # each row carries its run's env fingerprint


def test_corrupt_run_is_refused_and_nothing_lost(sample_run, tmp_path):
    store = tmp_path / "store.sqlite"
    add_run(store, sample_run)
    bad = tmp_path / "bad"
    shutil.copytree(sample_run, bad)
    (bad / "run.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(StoreError, match="refused") as info:
        add_run(store, bad)
    assert "\n" not in str(info.value)
    assert len(stored_rows(store)) == SAMPLE_RUN_CELLS


def test_newer_store_is_refused(sample_run, tmp_path):
    store = tmp_path / "store.sqlite"
    with sqlite3.connect(store) as con:
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer"):
        add_run(store, sample_run)


def test_two_writers_at_once_keep_both_runs(sample_run, tmp_path):
    store = tmp_path / "store.sqlite"
    other = tmp_path / "other"
    shutil.copytree(sample_run, other)
    with (other / "results.jsonl").open("a", encoding="utf-8") as f:
        f.write("\n")  # a different run key, the same rows
    code = (
        "import sys; from torchparity.store.local import add_run; add_run(sys.argv[1], sys.argv[2])"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(store), str(run)])
        for run in (sample_run, other)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert len(stored_rows(store)) == 2 * SAMPLE_RUN_CELLS


def test_store_add_cli(sample_run, tmp_path):
    store = tmp_path / "s" / "store.sqlite"
    first = run_cli("store", "add", str(sample_run), "--store", str(store))
    assert first.returncode == 0, first.stderr
    assert "added" in first.stdout
    again = run_cli("store", "add", str(sample_run), "--store", str(store))
    assert "already stored" in again.stdout
    bad = run_cli("store", "add", str(tmp_path / "nothing"), "--store", str(store))
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1
    assert len(stored_rows(store)) == SAMPLE_RUN_CELLS
