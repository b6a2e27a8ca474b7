"""compare: throughput with a U test and a noise floor, drift, status, the gate."""

import re
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.helpers import read_env, read_rows, write_env, write_rows
from torchparity.report import compare, compare_render

_rows = read_rows
_write_rows = write_rows


def _copy(sample_run, tmp_path, name="current"):
    dest = tmp_path / name
    shutil.copytree(sample_run, dest)
    return dest


def test_parse_fail_on():
    gate = compare.parse_fail_on("throughput=10%,drift,status")
    assert gate == compare.Gate(throughput=0.10, drift=True, status=True)
    assert compare.parse_fail_on("throughput=25").throughput == 0.25
    assert compare.parse_fail_on("throughput=10%,noisy").noisy
    assert compare.parse_fail_on("instructions=2%").instructions == pytest.approx(0.02)
    for bad in ("speed=10%", "throughput=abc", "throughput=0%", "drift=1", "noisy=1"):
        with pytest.raises(compare.FailOnError):
            compare.parse_fail_on(bad)


def test_u_test():
    assert compare.u_test([1.0, 2.0], [3.0, 4.0]) is None  # too few samples
    assert compare.u_test([1.0] * 7, [1.0] * 7) == 1.0
    separated = compare.u_test(
        [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6], [2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6]
    )
    assert separated == pytest.approx(2 / 3432)  # exact two-sided p for 7 vs 7, fully separated
    assert compare.u_test([1, 3, 5, 7, 9, 11, 13], [2, 4, 6, 8, 10, 12, 14]) > 0.5


def test_noise_floor_hides_small_significant_changes():
    base = {
        "cell_id": "a",
        "status": "pass",
        "throughput_items_s": 100.0,
        "samples_ms": [10.0] * 6 + [10.1],
    }
    cur = {**base, "throughput_items_s": 97.0, "samples_ms": [10.3] * 6 + [10.4]}
    change = compare.compare_cell(base, cur)
    assert change.p_value < compare.ALPHA and change.throughput_verdict == "unchanged"
    assert compare.compare_cell(base, cur, noise_floor=0.01).throughput_verdict == "slower"


def test_identical_runs_are_quiet(cli, sample_run, tmp_path):
    baseline = _copy(sample_run, tmp_path, "baseline")
    _write_rows(baseline, _steady_rounds(_rows(baseline)))  # this machine's noise aside
    current = _copy(baseline, tmp_path)
    proc = cli("compare", str(baseline), str(current), "--fail-on", "throughput=10%,drift,status")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Gate: passed" in proc.stdout and "warning" not in proc.stderr
    assert "slower" not in proc.stdout and "new failure" not in proc.stdout
    assert (current / "compare.md").is_file() and (current / "compare.html").is_file()


def _steady_rounds(rows):
    """Give every measured row three rounds 1% apart around its median: the
    gate's floor then rests on known figures, not on this machine's noise."""
    for r in rows:
        if r.get("round_medians_ms"):
            m = r["latency_ms_median"]
            r["round_medians_ms"] = [m * 0.99, m, m * 1.01]
    return rows


@pytest.mark.slow
def test_two_x_slowdown_and_new_failure_are_flagged(cli, sample_run, tmp_path):
    baseline = _copy(sample_run, tmp_path, "baseline")
    base_rows = _steady_rounds(_rows(baseline))
    _write_rows(baseline, base_rows)
    current = _copy(baseline, tmp_path)
    rows = _rows(current)
    slow = next(r for r in rows if r.get("round_medians_ms"))
    slow["round_medians_ms"] = [2 * m for m in slow["round_medians_ms"]]
    slow["throughput_items_s"] /= 2
    slow["latency_ms_median"] *= 2
    broken = next(r for r in rows if r["status"] == "pass" and r["cell_id"] != slow["cell_id"])
    broken.update(status="error", reason="run: RuntimeError: injected")
    _write_rows(current, rows)

    proc = cli(
        "compare",
        str(baseline),
        str(current),
        "--fail-on",
        "throughput=10%,drift,status",
        "--out",
        str(tmp_path / "cmp"),
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Gate: FAILED** (2 regressions)" in proc.stdout
    assert f"{slow['case']} cpu/eager/{slow['precision']}: throughput -50.0%" in proc.stdout
    assert f"{broken['case']} cpu/eager/{broken['precision']}: status pass -> error" in proc.stdout
    html = (tmp_path / "cmp" / "compare.html").read_text(encoding="utf-8")
    assert "Gate: FAILED" in html and "new failure" in html

    # Each gate item is selective: drift alone does not fail on these changes.
    assert (
        cli(
            "compare",
            str(baseline),
            str(current),
            "--fail-on",
            "drift",
            "--out",
            str(tmp_path / "cmp2"),
        ).returncode
        == 0
    )
    # Without --fail-on, compare reports and exits 0.
    assert (
        cli("compare", str(baseline), str(current), "--out", str(tmp_path / "cmp3")).returncode == 0
    )


# -- the round-level gate on synthetic runs --------------------------------------------


def _synthetic_run(rng, cells=20, noise=0.02, slow=None, machine=1.0, rounds=3):
    """Rows with round medians: each cell's true level times log-normal noise per
    round; ``slow``: {cell index: factor}; ``machine``: a run-wide slowdown that the
    calibration workload (timed in the same windows) sees too."""
    rows = []
    for i in range(cells):
        level = (1.0 + i) * (slow or {}).get(i, 1.0) * machine
        wobble = np.exp(rng.normal(0, noise, rounds))
        medians = list(level * wobble)
        rows.append(
            {
                "cell_id": f"c{i}|cpu|fp32|eager",
                "case": f"c{i}",
                "device": "cpu",
                "precision": "fp32",
                "backend": "eager",
                "status": "pass",
                "throughput_items_s": 1.0 / float(np.median(medians)),
                "round_medians_ms": medians,
                "calibration_round_ms": list(0.1 * machine * wobble),
            }
        )
    return rows


GATE10 = compare.Gate(throughput=0.10)


def test_round_gate_is_quiet_on_identical_code_and_catches_a_planted_slowdown():
    rng = np.random.default_rng(0)
    a1, a2 = _synthetic_run(rng), _synthetic_run(rng)
    aa = compare.compare_runs(a1, a2)
    assert not aa.too_noisy(GATE10) and aa.regressions(GATE10) == []
    b = _synthetic_run(rng, slow={0: 1.2, 5: 1.2, 9: 1.2})
    ab = compare.compare_runs(a2, b)
    flagged = sorted(c.case for c, _ in ab.regressions(GATE10))
    assert flagged == ["c0", "c5", "c9"]
    assert ab.noise_floor < 0.10  # derived from the runs' 2% round spread


def test_one_slow_round_does_not_hide_a_planted_slowdown():
    """The round medians seen on this machine with a bursty neighbour: the
    baseline's first round caught a burst (+13%), the current run is 24%
    slower. Welch's test on 3 + 3 rounds gives p = 0.08 here; the cell's
    variance shrunk toward the other cells' 2% spread resolves it."""
    rng = np.random.default_rng(3)
    base, cur = _synthetic_run(rng, noise=0.02), _synthetic_run(rng, noise=0.02)
    base[0]["round_medians_ms"] = [0.789, 0.686, 0.698]
    cur[0]["round_medians_ms"] = [0.860, 0.870, 0.877]
    for row in (base[0], cur[0]):
        row["throughput_items_s"] = 1.0 / float(np.median(row["round_medians_ms"]))
    from scipy.stats import ttest_ind

    logs = [np.log(r[0]["round_medians_ms"]) for r in (base, cur)]
    assert (
        ttest_ind(*logs, equal_var=False).pvalue > compare.ROUND_ALPHA
    )  # what the old test missed
    result = compare.compare_runs(base, cur)
    assert [c.case for c, _ in result.regressions(GATE10)] == ["c0"]
    # the same burst with no change is not a regression
    cur[0]["round_medians_ms"] = [0.70, 0.69, 0.695]
    cur[0]["throughput_items_s"] = 1.0 / 0.695
    assert compare.compare_runs(base, cur).regressions(GATE10) == []


def test_a_run_too_noisy_for_the_threshold_says_so_instead_of_flagging():
    rng = np.random.default_rng(1)
    noisy = compare.compare_runs(_synthetic_run(rng, noise=0.3), _synthetic_run(rng, noise=0.3))
    assert noisy.too_noisy(GATE10) and noisy.regressions(GATE10) == []
    assert "Too noisy to judge throughput at 10%" in compare_render.markdown(noisy, gate=GATE10)
    assert not noisy.failed(GATE10)
    assert noisy.failed(compare.Gate(throughput=0.10, noisy=True))  # CI may choose to fail instead
    coarse = compare.compare_runs(_synthetic_run(rng, noise=0.1), _synthetic_run(rng, noise=0.1))
    assert coarse.too_noisy(GATE10) and not coarse.too_noisy(compare.Gate(throughput=0.8))


def test_calibration_removes_a_machine_wide_slowdown():
    rng = np.random.default_rng(2)
    base = _synthetic_run(rng, noise=0.01)
    loaded = _synthetic_run(
        rng, noise=0.01, machine=1.4
    )  # the whole second run on a busier machine
    raw = compare.compare_runs(
        base, loaded
    )  # the calibration saw the machine slow down: no verdict
    assert raw.machine_shift == pytest.approx(0.4, rel=0.05)
    assert raw.too_noisy(GATE10) and raw.regressions(GATE10) == []
    assert re.search(
        r"calibration workload ran (39|40|41)% slower", compare_render.markdown(raw, gate=GATE10)
    )
    normalized = compare.compare_runs(base, loaded, normalize=True)
    assert normalized.regressions(GATE10) == [] and normalized.normalized
    planted = _synthetic_run(rng, noise=0.01, machine=1.4, slow={3: 1.25})
    caught = compare.compare_runs(base, planted, normalize=True)
    assert [c.case for c, _ in caught.regressions(GATE10)] == ["c3"]


def test_cells_scattered_by_the_machine_are_not_judged():
    """Each cell moved by its own factor (0.55x-0.94x, as seen here when two
    threads shared the machine with a slow minute) while the single-threaded
    calibration did not: the scatter says the machine moved them."""
    rng = np.random.default_rng(4)
    base = _synthetic_run(rng, noise=0.01)
    factors = {i: float(f) for i, f in enumerate(rng.uniform(1.05, 1.8, 20))}
    scattered = _synthetic_run(rng, noise=0.01, slow=factors)
    for normalize in (False, True):
        result = compare.compare_runs(base, scattered, normalize=normalize)
        assert result.too_noisy(GATE10) and result.regressions(GATE10) == []
        assert "scatter around their median" in compare_render.markdown(result, gate=GATE10)


def test_one_window_rows_fall_back_to_the_u_test_with_a_warning():
    rng = np.random.default_rng(3)
    rows = _synthetic_run(rng, cells=2)
    for r in rows:
        r.pop("round_medians_ms")
        r["samples_ms"] = [1.0] * 7
    result = compare.compare_runs(rows, rows)
    assert result.changes[0].throughput_basis == "samples (one window)"
    assert any("one window" in w for w in result.warnings)


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
    assert (
        proc.returncode == 2
        and "valid: throughput=N%, instructions=N%, drift, status, noisy" in proc.stderr
    )


def test_instruction_gate_flags_counted_growth_only():
    base = {"cell_id": "a", "case": "a", "status": "pass", "instructions_per_call": 1_000_000.0}
    grew = {**base, "instructions_per_call": 1_030_000.0}
    result = compare.compare_runs([base], [grew])
    failing = result.regressions(compare.Gate(instructions=0.02))
    assert [why for _, why in failing] == [["instructions per call +3.0%"]]
    assert result.regressions(compare.Gate(instructions=0.05)) == []
    assert (
        result.regressions(compare.Gate(throughput=0.05)) == []
    )  # no timing, no throughput verdict


# -- broad regressions: a subset of cells moved by a common factor ----------------------


def _six(rng, changed=0, factor=1.25, noise=0.02):
    """Two runs of 6 cells (quiet: 2% round noise); in the second, the first
    ``changed`` cells do ``factor`` times the work."""
    slow = {i: factor for i in range(changed)}
    return _synthetic_run(rng, cells=6, noise=noise), _synthetic_run(
        rng, cells=6, noise=noise, slow=slow
    )


@pytest.mark.parametrize("changed", [1, 3, 5])
def test_a_change_to_some_of_the_cells_is_caught_not_read_as_scatter(changed):
    caught = 0
    for seed in range(10):
        base, cur = _six(np.random.default_rng(seed), changed)
        result = compare.compare_runs(base, cur)
        flagged = sorted(c.case for c, _ in result.regressions(GATE10))
        assert set(flagged) <= {f"c{i}" for i in range(changed)}, (seed, flagged)  # no false flag
        if flagged == [f"c{i}" for i in range(changed)]:
            caught += 1
            assert result.outcome(GATE10) == "failed"
            groups = result.groups
            assert groups is not None
            if groups.moved:  # read as two levels: the unchanged cells are the steady ones
                assert groups.steady == 6 - changed
                assert "fall in two groups" in result.noise_line(GATE10)
        else:  # never a pass: what the gate cannot resolve it says it could not judge
            assert result.outcome(GATE10) == "not judged", (seed, result.noise_line(GATE10))
    assert caught >= 9, caught


def test_identical_code_flags_nothing_and_is_one_level():
    outcomes = []
    for seed in range(10):
        base, cur = _six(np.random.default_rng(100 + seed))
        result = compare.compare_runs(base, cur)
        assert result.regressions(GATE10) == [], seed
        assert result.groups is not None and result.groups.moved == 0
        outcomes.append(result.outcome(GATE10))
    # Six cells estimate the scatter roughly: one draw in ten may leave the gate unable to judge 10%.
    assert outcomes.count("passed") >= 9 and "failed" not in outcomes, outcomes


def _run_dir(path, rows):
    write_rows(path, rows)
    write_env(path, {"fingerprint": "same", "run_id": path.name})
    return path


@pytest.mark.slow
def test_compare_exits_3_and_names_the_cells_it_could_not_judge(cli, tmp_path):
    rng = np.random.default_rng(7)
    base = _run_dir(tmp_path / "base", _synthetic_run(rng, cells=6, noise=0.3))
    cur = _run_dir(tmp_path / "cur", _synthetic_run(rng, cells=6, noise=0.3))
    proc = cli("compare", str(base), str(cur), "--fail-on", "throughput=10%,status")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith("**Gate: not judged**: 6 cells could not be judged (c0 cpu/eager/fp32")
    assert "c0 cpu/eager/fp32" in first and "noise floor" in first and "round-to-round" in first
    # `noisy` in the gate turns the third state into a failure
    proc = cli("compare", str(base), str(cur), "--fail-on", "throughput=10%,noisy")
    assert proc.returncode == 1 and proc.stdout.startswith("**Gate: FAILED**")


def test_compare_exits_1_on_a_broad_regression_and_0_on_identical_code(cli, tmp_path):
    base_rows, cur_rows = _six(np.random.default_rng(8), changed=3)
    base, cur = _run_dir(tmp_path / "base", base_rows), _run_dir(tmp_path / "cur", cur_rows)
    proc = cli("compare", str(base), str(cur), "--fail-on", "throughput=10%")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("**Gate: FAILED**: 3 regressions")
    again = _run_dir(tmp_path / "again", base_rows)
    proc = cli("compare", str(base), str(again), "--fail-on", "throughput=10%")
    assert proc.returncode == 0 and proc.stdout.startswith("**Gate: passed**")


def test_instruction_counts_from_different_cpus_are_not_judged():
    base = {"cell_id": "a", "case": "a", "status": "pass", "instructions_per_call": 1_000_000.0}
    grew = {**base, "instructions_per_call": 1_300_000.0}
    gate = compare.Gate(instructions=0.02)
    same = compare.compare_runs([base], [grew], {"cpu": "X"}, {"cpu": "X"})
    assert same.outcome(gate) == "failed"
    other = compare.compare_runs([base], [grew], {"cpu": "X"}, {"cpu": "Y"})
    assert other.regressions(gate) == [] and other.outcome(gate) == "not judged"
    assert "different CPUs (X vs Y)" in other.gate_line(gate)


def test_instruction_counts_of_different_kernels_are_not_judged():
    """Counts taken with another kernel choice (an older torchparity counted
    the FMA kernels) measure other code: not judged, and said why."""
    base = {"cell_id": "a", "case": "a", "status": "pass", "instructions_per_call": 1_000_000.0}
    base = {**base, "instructions_method": "callgrind Ir (user space)"}
    grew = {**base, "instructions_per_call": 1_300_000.0, "instructions_method": "M2"}
    gate = compare.Gate(instructions=0.02)
    other = compare.compare_runs([base], [grew], {"cpu": "X"}, {"cpu": "X"})
    assert other.regressions(gate) == [] and other.outcome(gate) == "not judged"
    assert "counted instructions differently (callgrind Ir (user space) vs M2)" in (
        other.gate_line(gate)
    )
    same = compare.compare_runs(
        [base], [{**grew, "instructions_method": base["instructions_method"]}]
    )
    assert same.outcome(gate) == "failed"


def _with_cell_scatter(rng, rows, sd):
    """``rows`` with each cell's whole level moved by its own log-normal factor
    (sd ``sd``): what a quiet VM does between two back-to-back runs (seen here:
    untouched cells 2-15% apart while their rounds spread 3%)."""
    out = []
    for row in rows:
        factor = float(np.exp(rng.normal(0, sd)))
        medians = [m * factor for m in row["round_medians_ms"]]
        out.append(
            {
                **row,
                "round_medians_ms": medians,
                "throughput_items_s": 1.0 / float(np.median(medians)),
            }
        )
    return out


def test_a_subset_moved_together_is_two_levels_even_when_every_cell_also_moved_a_little():
    caught = 0
    for seed in range(10):
        rng = np.random.default_rng(200 + seed)
        base = _synthetic_run(rng, cells=8, noise=0.02)
        cur = _with_cell_scatter(
            rng, _synthetic_run(rng, cells=8, noise=0.02, slow={i: 1.25 for i in range(4)}), 0.03
        )
        result = compare.compare_runs(base, cur)
        flagged = sorted(c.case for c, _ in result.regressions(GATE10))
        assert set(flagged) <= {"c0", "c1", "c2", "c3"}, (seed, flagged)  # no false flag
        assert result.groups is not None and result.groups.moved == 4, (seed, result.groups)
        caught += flagged == ["c0", "c1", "c2", "c3"]
    assert caught >= 8, caught


def test_a_slowdown_beyond_the_floor_fails_a_run_too_noisy_for_the_threshold():
    """The floor is above 10% (the cells scatter), yet a cell 80% slower is
    beyond it: flagged; the cells within the floor are the ones not judged."""
    rng = np.random.default_rng(7)
    base = _synthetic_run(rng, cells=12, noise=0.02)
    cur = _with_cell_scatter(rng, _synthetic_run(rng, cells=12, noise=0.02, slow={0: 1.8}), 0.08)
    result = compare.compare_runs(base, cur)
    assert result.too_noisy(GATE10), result.noise_line(GATE10)
    assert [c.case for c, _ in result.regressions(GATE10)] == ["c0"]
    assert result.outcome(GATE10) == "failed"
    assert "c0" not in {c.case for c, _ in result.unjudged(GATE10)}
    assert len(result.unjudged(GATE10)) == 11


def test_compare_text_follows_the_tables_one_escaping_rule():
    """compare.md's headings and lines escape run text as summary.md's tables
    do (report/markdown.py): a `|` and a `>` too, not only `&` and `<`."""
    from torchparity.report.markdown import markdown_table, md_text

    text = "x|y <b> & [l](u)"
    page = compare_render.markdown(compare.compare_runs([], []), title=text)
    assert f"# {md_text(text)}" in page.splitlines()
    assert md_text(text) == r"x\|y \<b\> \& \[l\](u)"  # backslashes: no entity on a terminal
    cell = markdown_table(pd.DataFrame({"case": [text]})).splitlines()[2]
    assert cell == f"| {md_text(text)} |"
