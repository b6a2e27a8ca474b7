"""Merging run directories from different machines, OSes or torch versions:
loading them, naming each one's platform, and the cross-platform view (per
cell: the output digest on each platform, the largest output difference
between platforms from the stored outputs, throughput side by side).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from torchparity._core import output_store
from torchparity._core.rundir import RESULTS_JSONL, RunDir, RunDirError

__all__ = ["LoadedRun", "RunDirError", "load_run", "load_runs", "merged_rows", "cross_platform"]


@dataclass
class LoadedRun:
    """One run directory's rows and environment, and the platform it stands for."""

    run_dir: Path
    env: dict[str, Any]
    rows: list[dict[str, Any]]
    platform: str = ""


def load_run(run_dir: Path) -> LoadedRun:
    """Rows and env.json of ``run_dir``; ``RunDirError`` when it is not a run directory."""
    rd = RunDir(run_dir)
    if not rd.has_results():
        raise RunDirError(f"{run_dir} is not a run directory (no {RESULTS_JSONL})")
    return LoadedRun(run_dir, rd.read_env(), rd.rows())


def _base_label(run: LoadedRun) -> str:
    first = run.rows[0] if run.rows else {}
    host = run.env.get("host") or first.get("host") or "?"
    os_name = run.env.get("os") or first.get("os") or "?"
    torch_version = run.env.get("torch") or first.get("torch") or "?"
    return f"{host} {os_name} torch {torch_version}"


def load_runs(run_dirs: list[Path]) -> list[LoadedRun]:
    """Load ``run_dirs`` and label each with its platform (host, OS, torch).
    Shards of one machine share a label; a second run of cells a label already
    holds (the same machine run twice) gets its run id appended, so no row is
    hidden behind another."""
    runs = [load_run(d) for d in run_dirs]
    held: dict[str, set[str]] = {}
    for run in runs:
        label = _base_label(run)
        ids = {str(r.get("cell_id")) for r in run.rows}
        if held.get(label, set()) & ids:
            label = f"{label} [{run.env.get('run_id') or run.run_dir.name}]"
        held.setdefault(label, set()).update(ids)
        run.platform = label
    return runs


def merged_rows(runs: list[LoadedRun]) -> list[dict[str, Any]]:
    """All rows, each tagged with its ``platform``."""
    return [{**r, "platform": run.platform} for run in runs for r in run.rows]


def _stored(run: LoadedRun, row: dict[str, Any]) -> list[output_store.StoredLeaf] | None:
    return RunDir(run.run_dir).load_outputs(row.get("output_file"))


def cross_platform(runs: list[LoadedRun]) -> pd.DataFrame:
    """One row per cell that ran on two or more platforms: status, digest and
    throughput per platform, whether all digests agree, and the largest output
    difference between any two platforms (``max_abs_diff``, its relative form,
    the leaf, the pair of platforms, whether it is over a sample)."""
    platforms = list(dict.fromkeys(run.platform for run in runs))
    by_cell: dict[str, dict[str, tuple[LoadedRun, dict[str, Any]]]] = {}
    for run in runs:
        for row in run.rows:
            by_cell.setdefault(str(row.get("cell_id")), {})[run.platform] = (run, row)
    records = []
    for per in by_cell.values():
        if len(per) < 2:
            continue
        any_row = next(iter(per.values()))[1]
        rec: dict[str, Any] = {
            k: any_row.get(k) for k in ("case", "device", "precision", "backend")
        }
        for p in platforms:
            row = per.get(p, (None, {}))[1]
            rec[f"status @ {p}"] = row.get("status")
            rec[f"digest @ {p}"] = row.get("output_digest")
            rec[f"items/s @ {p}"] = row.get("throughput_items_s")
        digests = {r.get("output_digest") for _, r in per.values() if r.get("output_digest")}
        rec["digests_agree"] = len(digests) == 1 if digests else None
        worst: tuple[output_store.OutputDifference, str] | None = None
        notes = []
        for (pa, (ra, rowa)), (pb, (rb, rowb)) in itertools.combinations(per.items(), 2):
            a, b = _stored(ra, rowa), _stored(rb, rowb)
            if a is None or b is None:
                continue
            diff = output_store.difference(a, b)
            if not diff.comparable:
                notes.append(f"{pa} vs {pb}: {diff.note}")
            if worst is None or _rank(diff) > _rank(worst[0]):
                worst = (diff, f"{pa} vs {pb}")
        if worst is None:
            rec.update(
                max_abs_diff=None,
                max_rel_diff=None,
                diff_leaf=None,
                diff_between=None,
                diff_over="",
                note="no stored outputs on two platforms",
            )
        else:
            diff, pair = worst
            rec.update(
                max_abs_diff=diff.max_abs_diff,
                max_rel_diff=diff.max_rel_diff,
                diff_leaf=diff.leaf,
                diff_between=pair,
                diff_over="sampled positions" if diff.sampled else "all elements",
                note="; ".join(notes),
            )
        records.append(rec)
    frame = pd.DataFrame(records)
    if not frame.empty:
        frame = frame.sort_values(
            "max_abs_diff", ascending=False, na_position="last", kind="stable"
        )
    return frame


def _rank(diff: output_store.OutputDifference) -> tuple[float, float]:
    return (
        diff.max_abs_diff if not math.isnan(diff.max_abs_diff) else math.inf,
        diff.max_rel_diff if not math.isnan(diff.max_rel_diff) else math.inf,
    )
