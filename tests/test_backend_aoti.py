"""AOTInductor backend: a compiled .pt2 package, loaded back and run (slow:
it compiles C++)."""

import shutil

import pytest

from tests.backend_runs import TINY, explain, run_rows

pytestmark = pytest.mark.skipif(
    not (
        shutil.which("g++") or shutil.which("clang++") or shutil.which("c++") or shutil.which("cl")
    ),
    reason="AOTInductor needs a C++ compiler",
)


@pytest.mark.slow
def test_package_runs_and_is_cached(tmp_path):
    cache = tmp_path / "cache"
    args = (
        "--case-file",
        str(TINY),
        "--suite",
        "tiny",
        "--precision",
        "fp32",
        "--backend",
        "aoti",
        "--cache-dir",
        str(cache),
    )
    first = run_rows(tmp_path / "first", *args)
    assert {r["status"] for r in first} == {"pass"}, explain(first)
    second = run_rows(tmp_path / "second", *args)
    assert {r["backend_cache"] for r in second} == {"hit"}, explain(second)
