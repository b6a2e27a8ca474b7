"""compare: throughput with a U test and a noise floor, drift, status, the gate."""

import shutil

import pytest

from harness.reporting import compare
from tests.helpers import read_env, read_rows, write_env, write_rows

_rows = read_rows
_write_rows = write_rows


def _copy(sample_run, tmp_path, name="current"):
    dest = tmp_path / name
    shutil.copytree(sample_run, dest)
    return dest


def _steadiest(rows):
    """The measured row whose samples spread least (max/min), so a 2x shift
    separates the two sample sets whatever this machine's noise."""
    measured = [r for r in rows if r.get("samples_ms")]
    return min(measured, key=lambda r: max(r["samples_ms"]) / min(r["samples_ms"]))


def test_parse_fail_on():
    gate = compare.parse_fail_on("throughput=10%,drift,status")
    assert gate == compare.Gate(throughput=0.10, drift=True, status=True)
    assert compare.parse_fail_on("throughput=25").throughput == 0.25
    for bad in ("speed=10%", "throughput=abc", "throughput=0%", "drift=1"):
        with pytest.raises(compare.FailOnError):
            compare.parse_fail_on(bad)


def test_u_test():
    assert compare.u_test([1.0, 2.0], [3.0, 4.0]) is None  # too few samples
    assert compare.u_test([1.0] * 7, [1.0] * 7) == 1.0
    separated = compare.u_test([1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6], [2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6])
    assert separated == pytest.approx(2 / 3432)  # exact two-sided p for 7 vs 7, fully separated
    assert compare.u_test([1, 3, 5, 7, 9, 11, 13], [2, 4, 6, 8, 10, 12, 14]) > 0.5


def test_noise_floor_hides_small_significant_changes():
    base = {"cell_id": "a", "status": "pass", "throughput_items_s": 100.0, "samples_ms": [10.0] * 6 + [10.1]}
    cur = {**base, "throughput_items_s": 97.0, "samples_ms": [10.3] * 6 + [10.4]}
    change = compare.compare_cell(base, cur)
    assert change.p_value < compare.ALPHA and change.throughput_verdict == "unchanged"
    assert compare.compare_cell(base, cur, noise_floor=0.01).throughput_verdict == "slower"


def test_identical_runs_are_quiet(cli, sample_run, tmp_path):
    current = _copy(sample_run, tmp_path)
    proc = cli("compare", str(sample_run), str(current), "--fail-on", "throughput=10%,drift,status")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Gate: passed" in proc.stdout and "warning" not in proc.stderr
    assert "slower" not in proc.stdout and "new failure" not in proc.stdout
    assert (current / "compare.md").is_file() and (current / "compare.html").is_file()


def test_two_x_slowdown_and_new_failure_are_flagged(cli, sample_run, tmp_path):
    # On a loaded machine even the steadiest cell may spread more than 2x, and
    # then a 2x shift is honestly not significant; give the chosen cell a
    # baseline with a 10% spread around its real median so the shift must show.
    baseline = _copy(sample_run, tmp_path, "baseline")
    base_rows = _rows(baseline)
    steady = _steadiest(base_rows)
    median = sorted(steady["samples_ms"])[len(steady["samples_ms"]) // 2]
    steady["samples_ms"] = [median * (1 + 0.1 * i / len(steady["samples_ms"])) for i in range(len(steady["samples_ms"]))]
    _write_rows(baseline, base_rows)
    sample_run = baseline
    current = _copy(sample_run, tmp_path)
    rows = _rows(current)
    slow = next(r for r in rows if r["cell_id"] == steady["cell_id"])
    slow["samples_ms"] = [2 * s for s in slow["samples_ms"]]
    slow["throughput_items_s"] /= 2
    slow["latency_ms_median"] *= 2
    broken = next(r for r in rows if r["status"] == "pass" and r["cell_id"] != slow["cell_id"])
    broken.update(status="error", reason="run: RuntimeError: injected")
    _write_rows(current, rows)

    proc = cli("compare", str(sample_run), str(current), "--fail-on", "throughput=10%,drift,status",
               "--out", str(tmp_path / "cmp"))  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Gate: FAILED** (2 regressions)" in proc.stdout
    assert f"{slow['case']} cpu/eager/{slow['precision']}: throughput -50.0%" in proc.stdout
    assert f"{broken['case']} cpu/eager/{broken['precision']}: status pass -> error" in proc.stdout
    html = (tmp_path / "cmp" / "compare.html").read_text(encoding="utf-8")
    assert "Gate: FAILED" in html and "new failure" in html

    # Each gate item is selective: drift alone does not fail on these changes.
    assert cli("compare", str(sample_run), str(current), "--fail-on", "drift",
               "--out", str(tmp_path / "cmp2")).returncode == 0  # fmt: skip
    # Without --fail-on, compare reports and exits 0.
    assert cli("compare", str(sample_run), str(current), "--out", str(tmp_path / "cmp3")).returncode == 0


def test_drift_regression_is_flagged(sample_run, tmp_path):
    rows = _rows(sample_run)
    worse = [dict(r) for r in rows]
    target = next(r for r in worse if isinstance(r.get("max_rel_err"), float))
    target["max_rel_err"] = target["max_rel_err"] * 10 + 1e-6
    result = compare.compare_runs(rows, worse)
    failing = result.regressions(compare.Gate(drift=True))
    assert [c.case for c, _ in failing] == [target["case"]]


def test_different_fingerprints_warn(cli, sample_run, tmp_path):
    current = _copy(sample_run, tmp_path)
    env = read_env(current)
    env.update(torch="9.9.9", fingerprint="0123456789abcdef")
    write_env(current, env)
    proc = cli("compare", str(sample_run), str(current))
    assert proc.returncode == 0
    assert "fingerprints differ" in proc.stderr and "torch:" in proc.stderr


def test_bad_input_is_one_line_exit_2(cli, sample_run, tmp_path):
    proc = cli("compare", str(sample_run), str(tmp_path / "nope"))
    assert proc.returncode == 2 and "not a run directory" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = cli("compare", str(sample_run), str(sample_run), "--fail-on", "speed")
    assert proc.returncode == 2 and "valid: throughput=N%, drift, status" in proc.stderr
