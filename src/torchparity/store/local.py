"""An embedded, append-only results store in one SQLite file.

SQLite (standard library) rather than DuckDB: it needs no install and no
extension download, and its file locking lets two ``store add`` calls write at
once without losing either run. Runs are keyed by a digest of run.json and
results.jsonl, so adding the same run twice is a no-op."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from torchparity._core.rundir import RunDir, RunDirError

SCHEMA_VERSION = 1
VERSION_KEYS = ("torch", "onnxruntime", "openvino", "executorch", "transformers")


class StoreError(Exception):
    """A store that cannot be used; the message is one line."""


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=60, isolation_level=None)
    version = con.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        con.close()
        raise StoreError(
            f"{path}: store schema {version} is newer than this torchparity's "
            f"({SCHEMA_VERSION}); upgrade torchparity"
        )
    if version == 0:
        con.execute("BEGIN IMMEDIATE")
        con.execute(
            "CREATE TABLE IF NOT EXISTS runs (run_key TEXT PRIMARY KEY, path TEXT, env TEXT)"
        )
        con.execute("CREATE TABLE IF NOT EXISTS rows (run_key TEXT, cell_id TEXT, row TEXT)")
        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        con.execute("COMMIT")
    return con


def _run_key(run: RunDir) -> str:
    digest = hashlib.sha256()
    for file in (run.run_json, run.results_jsonl):
        digest.update(file.read_bytes() if file.is_file() else b"")
    return digest.hexdigest()


def add_run(store: Path, run_path: Path) -> bool:
    """Add every row of the run at ``run_path``; False when it was already there.
    A run directory failing its format checks raises ``StoreError``."""
    run = RunDir(Path(run_path))
    try:
        run.read_selection()
        env: dict[str, Any] = run.read_env()
        rows = run.rows()
    except RunDirError as exc:
        raise StoreError(f"refused {run_path}: {exc}") from None
    key = _run_key(run)
    con = _connect(Path(store))
    try:
        con.execute("BEGIN IMMEDIATE")
        if con.execute("SELECT 1 FROM runs WHERE run_key = ?", (key,)).fetchone():
            con.execute("ROLLBACK")
            return False
        con.execute("INSERT INTO runs VALUES (?, ?, ?)", (key, str(run_path), json.dumps(env)))
        con.executemany(
            "INSERT INTO rows VALUES (?, ?, ?)",
            [(key, str(r.get("cell_id")), json.dumps(r)) for r in rows],
        )
        con.execute("COMMIT")
        return True
    finally:
        con.close()


def stored_rows(store: Path) -> list[dict[str, Any]]:
    """Every stored row, each with its run's env under ``"env"``."""
    con = _connect(Path(store))
    try:
        query = "SELECT rows.row, runs.env FROM rows JOIN runs USING (run_key)"
        return [{**json.loads(r), "env": json.loads(e)} for r, e in con.execute(query)]
    finally:
        con.close()


def default_store() -> Path:
    """The user's data folder by platform convention (``TORCHPARITY_STORE`` overrides)."""
    import os
    import sys

    if os.environ.get("TORCHPARITY_STORE"):
        return Path(os.environ["TORCHPARITY_STORE"])
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "torchparity" / "store.sqlite"
