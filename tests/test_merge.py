"""Merging runs of different machines: the cross-platform view finds a
perturbed output, and every row of every run is in the merged report."""

import shutil

import numpy as np
import pandas as pd

from tests.helpers import read_env, read_rows, write_env, write_rows
from torchparity._core import output_store
from torchparity._core.rundir import RunDir
from torchparity.report import merge


def _as_other_machine(sample_run, dest):
    """A copy of the run that says it ran on another machine."""
    shutil.copytree(sample_run, dest)
    env = read_env(dest)
    env.update(host="mac-runner", os="Darwin", run_id="other")
    write_env(dest, env)
    rows = read_rows(dest)
    for r in rows:
        r.update(host="mac-runner", os="Darwin", run_id="other")
    return rows


def _write_rows(run_dir, rows):
    write_rows(run_dir, rows)


def _perturb(run_dir, row, leaf, position, delta):
    """Move one stored element of ``row``'s output by ``delta`` (as the other
    machine would have computed it) and change the row's digest accordingly."""
    path = RunDir(run_dir).stored_output(row["output_file"])
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays[f"values_{leaf}"][position] += delta
    np.savez_compressed(path, **arrays)
    row["output_digest"] = "0" * 16


def test_rows_point_at_their_stored_outputs(sample_run):
    rows = read_rows(sample_run)
    ran = [r for r in rows if r["status"] == "pass"]
    assert ran and all((sample_run / "outputs" / r["output_file"]).is_file() for r in ran)
    wide = next(r for r in ran if r["case"] == "rep_wide")
    stored = output_store.load(sample_run / "outputs" / wide["output_file"])
    assert not stored[0].whole and stored[0].shape == [16, 512]  # larger than FULL_LIMIT: sampled


def test_merge_reports_the_perturbed_output(cli, sample_run, tmp_path):
    other = tmp_path / "other"
    rows = _as_other_machine(sample_run, other)
    target = next(
        r
        for r in rows
        if r["case"] == "rep_small" and r["precision"] == "fp32" and r["status"] == "pass"
    )
    _perturb(other, target, leaf=0, position=5, delta=0.125)
    _write_rows(other, rows)

    out = tmp_path / "merged"
    proc = cli("report", str(sample_run), str(other), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    merged = pd.read_csv(out / "results.csv")
    assert len(merged) == 2 * len(rows) and merged["platform"].nunique() == 2

    cross = merge.cross_platform(merge.load_runs([sample_run, other]))
    assert len(cross) == len(rows)  # every cell ran on both
    cross = cross[cross["device"] == "cpu"].set_index(["case", "precision"])
    assert cross.loc[("rep_small", "fp32"), "max_abs_diff"] == 0.125
    assert not cross.loc[("rep_small", "fp32"), "digests_agree"]
    assert cross.loc[("rep_small", "fp32"), "diff_over"] == "all elements"
    others = cross.drop(index=("rep_small", "fp32"))
    measured = others["max_abs_diff"].notna()
    assert (
        others.loc[measured, "max_abs_diff"] == 0.0
    ).all() and measured.sum() == 3  # the other passing cells
    assert cross.loc[("rep_wide", "fp32"), "diff_over"] == "sampled positions"

    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Cross-platform" in page and "mac-runner Darwin" in page and "0.125" in page
    assert page.count("<td class='cell ") == 2 * len(rows)  # one matrix cell per row of each run


def test_merge_without_out_leaves_the_runs_alone(cli, sample_run, tmp_path):
    other = tmp_path / "other"
    _write_rows(other, _as_other_machine(sample_run, other))
    before = (sample_run / "results.csv").read_bytes()
    proc = cli("report", str(sample_run), str(other), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (sample_run / "results.csv").read_bytes() == before
    merged = list((tmp_path / "reports").glob("merged-*/report.html"))
    assert len(merged) == 1 and f"report: {merged[0].relative_to(tmp_path)}" in proc.stdout


def test_same_machine_twice_keeps_both_runs_apart(sample_run, tmp_path):
    again = tmp_path / "again"
    shutil.copytree(sample_run, again)
    env = read_env(again)
    env["run_id"] = "second"
    write_env(again, env)
    runs = merge.load_runs([sample_run, again])
    assert runs[0].platform != runs[1].platform and runs[1].platform.endswith("[second]")
    cross = merge.cross_platform(runs)
    assert (cross["max_abs_diff"].dropna() == 0).all() and cross["digests_agree"].dropna().all()
