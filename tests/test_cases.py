import dataclasses

import pytest
import torch

from torchparity.cases.case import (
    CASES,
    SUITES,
    KnownFailure,
    RegistryError,
    load_plugin,
    register_model,
    select_cases,
)
from torchparity.cases.outputs import flatten


def test_case_file_registers_through_the_public_api(tiny_cases):
    load_plugin(("file", str(tiny_cases)))
    load_plugin(("file", str(tiny_cases)))  # idempotent
    assert {"tiny_linear", "tiny_heads"} <= set(SUITES["tiny"])
    assert CASES["tiny_linear"].kind == "model"
    assert [c.name for c in select_cases("tiny", ["*heads"])] == ["tiny_heads"]
    with pytest.raises(RegistryError, match="no case matches 'nope'.*valid: tiny_linear"):
        select_cases("tiny", ["nope"])
    with pytest.raises(RegistryError, match="unknown suite"):
        select_cases("no_such_suite")


def test_duplicate_name_from_another_module_is_refused():
    register_model("dup_case", lambda: torch.nn.Identity(), lambda g, b: (g.normal(b),))
    CASES["dup_case"].source = "somewhere.else"
    with pytest.raises(RegistryError, match="already registered"):
        register_model("dup_case", lambda: torch.nn.Identity(), lambda g, b: (g.normal(b),))
    del CASES["dup_case"]


def test_missing_plugin_and_file():
    with pytest.raises(RegistryError, match="not found"):
        load_plugin(("module", "no_such_module_xyz"))
    with pytest.raises(RegistryError, match="does not exist"):
        load_plugin(("file", "/no/such/file.py"))


def test_known_failure_globs():
    mark = KnownFailure("r", backend="onnx*", precision="fp16", link="https://x")
    assert mark.matches("onnxruntime", "cpu", "fp16")
    assert not mark.matches("onnxruntime", "cpu", "fp32")
    assert not mark.matches("eager", "cpu", "fp16")
    assert mark.describe() == "known: r (https://x)"


@dataclasses.dataclass
class Out:
    logits: torch.Tensor
    extra: tuple


def test_flatten_nested_outputs_with_names():
    tree = Out(torch.zeros(2), (torch.ones(1), {"k": [torch.ones(3)], "none": None}, 3))
    flat = flatten(tree)
    assert flat.names == [".logits", ".extra[0]", ".extra[1]['k'][0]", ".extra[2]"]
    assert flat.tensors[3].item() == 3
    assert flat.dropped == [".extra[1]['none']: NoneType"]  # named, not lost without a word
    assert flatten(torch.ones(2)).names == ["out"]
