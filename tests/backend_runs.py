"""Running a small matrix through the real command line and reading its rows:
shared by the backend tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers import DATA, read_rows, run_cli

TINY = DATA / "tiny_cases.py"
UNEXPORTABLE = DATA / "unexportable_cases.py"


def run_rows(
    out: Path, *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """``torchparity run ... --out OUT`` on CPU (quiet, in-process cells), its rows."""
    proc = run_cli(
        "run",
        "--device",
        "cpu",
        "--min-time",
        "0.01",
        "--no-isolate",
        "--quiet",
        "--out",
        str(out),
        *args,
        timeout=timeout,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return read_rows(out)


def by_cell(rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["case"], r["precision"], r["backend"]): r for r in rows}


def explain(rows: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{r['case']} {r['precision']} {r['backend']}: {r['status']} {r['reason']}" for r in rows
    )
