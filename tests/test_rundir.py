"""The run-directory and row contracts: streamed rows survive kills, the reader
rejects rows of the wrong shape, names never become paths unescaped."""

import json
import os

import pytest

from torchparity._core import row as row_mod
from torchparity._core.files import safe_file_stem
from torchparity._core.rundir import JsonlWriter, RunDir, RunDirError, read_rows, repair_torn_tail
from torchparity._core.status import BAD_STATUSES, STATUSES, Status


def test_torn_last_line_is_tolerated_and_repaired(tmp_path):
    path = tmp_path / "results.jsonl"
    with JsonlWriter(path) as w:
        w.append({"cell_id": "a", "status": "pass", "max_ulp": float("inf")})
        w.append({"cell_id": "b", "status": "fail"})
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"cell_id": "c", "sta')  # killed mid-write
    rows = read_rows(path)
    assert [r["cell_id"] for r in rows] == ["a", "b"]
    assert rows[0]["max_ulp"] == float("inf")
    with JsonlWriter(path) as w:  # appending again cuts the torn tail first
        w.append({"cell_id": "c", "status": "pass"})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["cell_id"] for line in lines] == ["a", "b", "c"]
    assert repair_torn_tail(path) == 0


def test_later_row_of_a_cell_wins_and_frame_is_flat(tmp_path):
    path = tmp_path / "results.jsonl"
    with JsonlWriter(path) as w:
        w.append({"cell_id": "a", "status": "crash", "samples_ms": [1, 2]})
        w.append({"cell_id": "a", "status": "pass", "samples_ms": [1, 2], "traceback": "x"})
    rows = read_rows(path)
    assert len(rows) == 1 and rows[0]["status"] == "pass"
    frame = row_mod.rows_frame(rows)
    assert "samples_ms" not in frame.columns and "traceback" not in frame.columns
    assert list(frame.columns[:3]) == ["case", "kind", "suite"]


def test_a_case_named_nan_stays_a_name(tmp_path):
    path = tmp_path / "results.jsonl"
    with JsonlWriter(path) as w:
        w.append(
            {"cell_id": "nan|cpu", "case": "nan", "status": "pass", "max_rel_err": float("nan")}
        )
    row = read_rows(path)[0]
    assert row["case"] == "nan" and row["max_rel_err"] != row["max_rel_err"]


@pytest.mark.parametrize(
    "bad, column",
    [
        ({"status": "great"}, "status"),
        ({"case": 3}, "case"),
        ({"latency_ms_median": "fast"}, "latency_ms_median"),
    ],
)
def test_rows_of_the_wrong_shape_are_refused_with_the_column(tmp_path, bad, column):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps({"cell_id": "x", **bad}) + "\n", encoding="utf-8")
    with pytest.raises(RunDirError, match=column):
        read_rows(path)


def test_status_vocabulary_is_the_contract():
    assert STATUSES == ("pass", "fail", "error", "skip", "crash", "timeout", "xfail")
    assert BAD_STATUSES == {"fail", "error", "crash", "timeout"}
    assert json.dumps({"s": Status.FAIL}) == '{"s": "fail"}'


def test_stored_output_names_cannot_leave_the_outputs_directory(tmp_path):
    rd = RunDir(tmp_path).create()
    rd.outputs_dir.mkdir()
    (tmp_path / "secret.npz").write_text("x")
    for name in ("../secret.npz", str(tmp_path / "secret.npz"), "..", "", None, 3):
        assert rd.stored_output(name) is None
    assert rd.load_outputs("../secret.npz") is None


def test_safe_file_stems_are_plain_and_distinct():
    names = ["../../../../evil", "/abs/path", "a/b", "a_b", "MLP", "mlp", "..", "nan"]
    stems = [safe_file_stem(n) for n in names]
    assert all("/" not in s and "\\" not in s and not s.startswith(".") for s in stems)
    assert len({s.lower() for s in stems}) == len(names)


def _partial(cell_id: str, rounds: int) -> dict:
    return {"cell_id": cell_id, "status": "pass", "rounds": rounds, "timing_partial": True}


def test_a_partial_row_is_superseded_and_compacted_once_final(tmp_path):
    rd = RunDir(tmp_path).create()
    with rd.results_writer() as w:
        w.append(_partial("a", 1))
        w.append({"cell_id": "b", "status": "error"})
        w.append(_partial("c", 1))
    assert rd.done_cell_ids() == {"b"} and set(rd.partial_rows()) == {"a", "c"}
    assert "a (1 of ? rounds)" in row_mod.partial_timing_note(rd.rows())
    with rd.results_writer() as w:
        w.append({"cell_id": "a", "status": "pass", "rounds": 3})
    assert rd.done_cell_ids() == {"a", "b"}
    assert rd.compact_results()
    lines = [json.loads(x) for x in rd.results_jsonl.read_text(encoding="utf-8").splitlines()]
    assert [(r["cell_id"], r.get("rounds")) for r in lines] == [("a", 3), ("b", None), ("c", 1)]
    assert not rd.compact_results()  # one line per cell already


def test_compaction_never_drops_an_unreadable_line(tmp_path):
    rd = RunDir(tmp_path).create()
    with rd.results_writer() as w:
        w.append(_partial("a", 1))
    with open(rd.results_jsonl, "a", encoding="utf-8") as fh:
        fh.write("not json\n")
    with rd.results_writer() as w:
        w.append({"cell_id": "a", "status": "pass"})
    assert not rd.compact_results()
    assert len(rd.results_jsonl.read_text(encoding="utf-8").splitlines()) == 3


def test_rounds_are_read_back_by_cell_and_index_later_wins(tmp_path):
    from torchparity.timing.rounds import RoundResult

    rd = RunDir(tmp_path).create()
    first = RoundResult(0, [1e-3, 2e-3], 10, 3, [5e-4, 6e-4])
    with rd.rounds_writer() as w:
        w.append(first.record("a"))
        w.append(RoundResult(1, [1e-3], 10).record("a"))
        w.append(RoundResult(1, [4e-3], 10).record("a"))  # the same round again: this one
        w.append({"cell_id": "b", "round": "x"})  # wrong shape: skipped
    rounds = rd.read_rounds()
    assert set(rounds) == {"a"} and sorted(rounds["a"]) == [0, 1]
    assert RoundResult.from_record(rounds["a"][0]) == first
    assert RoundResult.from_record(rounds["a"][1]).samples_s == [4e-3]
    assert RoundResult.from_record({"round": 0, "number": 1, "samples_s": ["1"]}) is None


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_atomic_writes_get_the_umask_mode_not_a_private_one(tmp_path):
    from torchparity._core.files import atomic_write_text

    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "report.html", "<html></html>")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_misspelled_column_is_refused_by_the_results_writer(tmp_path):
    """The suite runs in strict mode (conftest): an undeclared column is an
    error naming the declared column it is closest to; nothing is written."""
    assert row_mod.strict_columns()
    rd = RunDir(tmp_path).create()
    with rd.results_writer() as w, pytest.raises(row_mod.RowError) as caught:
        w.append({"cell_id": "a", "status": "pass", "latency_ms_medain": 1.0})
    assert "'latency_ms_medain' (did you mean 'latency_ms_median'?)" in str(caught.value)
    assert not rd.rows()


def test_declared_and_namespaced_columns_are_written(tmp_path):
    from torchparity.timing.rounds import timing_column_names

    rd = RunDir(tmp_path).create()
    row = {"cell_id": "a", "status": "pass", "backend_opset": 18, "plugin_energy_j": 0.5}
    with rd.results_writer() as w:
        w.append({**row, **dict.fromkeys(timing_column_names(), 1.0)})
    assert rd.rows()[0]["plugin_energy_j"] == 0.5
    assert not row_mod.undeclared_columns(timing_column_names())


def test_outside_strict_mode_an_undeclared_column_is_kept():
    """A user's run never fails over a column name: only strict mode refuses."""
    row_mod.check_declared({"status": "pass", "my_column": 1}, strict=False)
    with pytest.raises(row_mod.RowError, match="my_column"):
        row_mod.check_declared({"status": "pass", "my_column": 1}, strict=True)
