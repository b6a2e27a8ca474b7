"""Keyword inputs, through the command line: a Hugging Face BERT whose input
factory returns ``input_ids`` and ``attention_mask`` as keywords runs with
no wrapper module on eager, export and ONNX Runtime; positional and keyword
parts together, with a literal keyword, run on the graph backends too."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import DATA
from tests.helpers import quick_run, read_rows
from torchparity.cases.call_args import as_positional, keyword_call, layout_of

CASES = DATA / "keyword_cases.py"


def _run(out, case: str, backends: str):
    return quick_run(CASES, "keywords", backends, out, "--case", case)


@pytest.mark.slow  # exports and converts a transformer: about a minute on 2 shared cores
def test_bert_with_keyword_inputs_passes_without_a_wrapper(tmp_path) -> None:
    pytest.importorskip("transformers")
    proc = _run(tmp_path / "run", "tiny_bert", "eager,export,onnxruntime")
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(tmp_path / "run")
    assert {r["backend"]: r["status"] for r in rows} == {
        "eager": "pass",
        "export": "pass",
        "onnxruntime": "pass",
    }, [r.get("reason") for r in rows]
    for row in rows:
        assert row["leaf_names"] == ["['last_hidden_state']", "['pooler_output']"]


@pytest.mark.slow
def test_positional_and_keyword_inputs_on_graph_backends(tmp_path) -> None:
    backends = "eager,torchscript,onnxruntime"  # export: the test below
    proc = _run(tmp_path / "run", "positional_and_keyword", backends)
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(tmp_path / "run")
    assert len(rows) == 3 and {r["status"] for r in rows} == {"pass"}, rows


def test_keyword_inputs_name_the_onnx_graph_s_and_the_exported_program_s_inputs(edge_run) -> None:
    """A whole-model cell's artifacts, as the run cached them: the ONNX file's
    graph inputs and the exported program's placeholders carry the keywords."""
    onnx = pytest.importorskip("onnx")
    out, cache, proc = edge_run
    assert proc.returncode == 0, proc.stderr
    rows = [r for r in read_rows(out) if r["case"] == "keyword_named"]
    assert {r["status"] for r in rows} == {"pass"}, [r.get("reason") for r in rows]
    (onnx_file,) = (cache / "artifacts" / "onnxruntime").glob("keyword_named-*.onnx")
    assert [i.name for i in onnx.load(str(onnx_file)).graph.input] == ["arg0", "scale", "bias"]
    (pt2,) = (cache / "artifacts" / "export").glob("keyword_named-*.pt2")
    program = torch.export.load(str(pt2))
    assert list(program.graph_signature.user_inputs) == ["arg0", "scale", "bias"]


class _Masked(torch.nn.Module):
    def forward(self, x: torch.Tensor, mask: torch.Tensor, shift: float = 0.0) -> torch.Tensor:
        return x * mask + shift


def test_the_wrapper_names_inputs_after_the_keywords() -> None:
    raw = ((torch.ones(2),), {"mask": torch.zeros(2), "shift": 1.5})
    layout = layout_of(raw)
    assert layout is not None and layout.names == ("mask",)
    wrapped = keyword_call(_Masked(), layout)
    inputs = as_positional(raw)
    assert len(inputs) == 2 and torch.equal(wrapped(*inputs), torch.full((2,), 1.5))
    exported = torch.export.export(wrapped, inputs)
    names = [
        s.arg.name for s in exported.graph_signature.input_specs if s.kind.name == "USER_INPUT"
    ]
    assert names == ["arg0", "mask"]
    assert "forward(arg0, mask, shift=1.5)" in repr(wrapped)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"not an identifier": torch.ones(1)}, "not a Python identifier"),
        ({"mask": [1, 2]}, "keyword input 'mask' is a list"),
        ({"arg0": torch.ones(1)}, "clashes"),
    ],
)
def test_bad_keyword_inputs_are_named(raw: dict, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        layout_of(raw)
