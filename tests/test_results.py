import json

from harness.results import ResultsWriter, read_rows, repair_torn_tail, rows_frame


def test_torn_last_line_is_tolerated_and_repaired(tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultsWriter(path) as w:
        w.append({"cell_id": "a", "status": "pass", "max_ulp": float("inf")})
        w.append({"cell_id": "b", "status": "fail"})
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"cell_id": "c", "sta')  # killed mid-write
    rows = read_rows(path)
    assert [r["cell_id"] for r in rows] == ["a", "b"]
    assert rows[0]["max_ulp"] == float("inf")
    with ResultsWriter(path) as w:  # appending again cuts the torn tail first
        w.append({"cell_id": "c", "status": "pass"})
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["cell_id"] for line in lines] == ["a", "b", "c"]
    assert repair_torn_tail(path) == 0


def test_later_row_of_a_cell_wins_and_frame_is_flat(tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultsWriter(path) as w:
        w.append({"cell_id": "a", "status": "crash", "samples_ms": [1, 2]})
        w.append({"cell_id": "a", "status": "pass", "samples_ms": [1, 2], "traceback": "x"})
    rows = read_rows(path)
    assert len(rows) == 1 and rows[0]["status"] == "pass"
    frame = rows_frame(rows)
    assert "samples_ms" not in frame.columns and "traceback" not in frame.columns
    assert list(frame.columns[:3]) == ["case", "kind", "suite"]
