"""No vacuous verdict from a constant reference, through the command line: a
zero-initialised head is re-drawn by the weight re-initialisation (and
refused when the case keeps its weights); a model that ignores its input is
refused unless the case declares its constant output."""

from __future__ import annotations

import torch

from tests.conftest import DATA
from tests.helpers import quick_run, read_rows
from torchparity.cases.inputs import init_weights


def test_constant_references_are_refused_or_fixed(tmp_path) -> None:
    out = tmp_path / "run"
    proc = quick_run(DATA / "constant_cases.py", "constant", "eager,export", out)
    assert proc.returncode == 0, proc.stderr  # findings, not a failed run
    rows: dict[str, list[dict]] = {}
    for row in read_rows(out):
        rows.setdefault(row["case"], []).append(row)
    assert all(len(r) == 2 for r in rows.values()) and len(rows) == 4
    for case in ("vit_zero_head", "ignores_input_declared"):
        assert {r["status"] for r in rows[case]} == {"pass"}, rows[case]
    for case, words in (
        ("vit_zero_head_kept", "all zeros"),
        ("ignores_input", "does not depend on the inputs"),
    ):
        for row in rows[case]:
            assert row["status"] == "error" and row["blame"] == "case", row
            reason = row["reason"]
            assert words in reason and "reinit_weights" in reason, reason
            assert "constant_output_ok=True" in reason and "\n" not in reason
            assert "rel_l2" not in row  # refused before any comparison
    assert "all zeros (out)" in rows["vit_zero_head_kept"][0]["reason"]  # the leaf, named


def test_reinit_redraws_zero_matrices_and_keeps_vectors() -> None:
    layer = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    torch.nn.init.zeros_(layer[0].weight)
    torch.nn.init.zeros_(layer[0].bias)
    init_weights(layer, "case", 0)
    assert layer[0].weight.abs().min() > 0  # a zero head would make the output constant
    assert not layer[0].bias.any()  # biases and norm parameters mean what they say
    assert torch.equal(layer[1].weight, torch.ones(3))
    assert not layer[1].bias.any()
