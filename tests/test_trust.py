"""A cache and a run directory that cannot lie or be turned against the user,
through the public command line: cached entries are keyed on what the model
computes, nothing executable in the cache runs unchecked, a run writes inside
its directory only, hostile rows cost bounded work, and a model that does not
reproduce itself is named."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from tests.helpers import DATA, read_rows, run_cli

BEHAVIOUR = DATA / "behaviour_cases.py"
QUICK = ("--device", "cpu", "--precision", "fp32", "--min-time", "0.01", "--no-isolate")


# -- cache entries keyed on what the model does -------------------------------------


def _world(root: Path, multiplier: int = 2, k: int = 4, act: str = "tanh") -> Path:
    """The helper module and config the behaviour case reads (never its own file)."""
    root.mkdir(exist_ok=True)
    helper = f"def finish(x):\n    return x * {multiplier}\n"
    (root / "behaviour_helper.py").write_text(helper, encoding="utf-8")
    (root / "config.json").write_text(json.dumps({"k": k, "act": act}), encoding="utf-8")
    return root


def _run_chain(tmp_path: Path, name: str, backends: str, scale: str = "1") -> list[dict]:
    env = {"TP_BEHAVIOUR_DIR": str(tmp_path / "world"), "TP_BEHAVIOUR_SCALE": scale}
    out = tmp_path / name
    proc = run_cli(
        "run",
        "--case-file",
        str(BEHAVIOUR),
        "--suite",
        "behaviour",
        "--case",
        "behaviour_chain",
        "--backend",
        backends,
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(out),
        *QUICK,
        env=env,
    )
    rows = read_rows(out)
    assert rows, proc.stderr
    return rows


def _changes() -> list[tuple[str, dict, str]]:
    """Each change after the first run: a helper's edit, a constructor argument
    that is not a parameter, a config value, an environment variable."""
    return [
        ("helper", {"multiplier": 3}, "1"),
        ("k", {"multiplier": 3, "k": 5}, "1"),
        ("act", {"multiplier": 3, "k": 5, "act": "sigmoid"}, "1"),
        ("env", {"multiplier": 3, "k": 5, "act": "sigmoid"}, "2.5"),
    ]


def _check_rebuilt(rows: list[dict], what: str) -> None:
    statuses = {r["backend"]: (r["status"], r.get("reason")) for r in rows}
    assert {s for s, _ in statuses.values()} == {"pass"}, (what, statuses)
    for row in rows:
        assert row["reference_cache"] == "rebuilt (model changed)", (what, row["reference_cache"])
        if row["backend"] != "eager":
            assert row["backend_cache"] == "rebuilt (model changed)", (what, row["backend_cache"])


def test_an_edited_helper_module_gives_a_fresh_reference_and_artifact(tmp_path):
    _world(tmp_path / "world")
    first = _run_chain(tmp_path, "r0", "eager,torchscript-trace")
    assert {(r["status"], r.get("reference_cache")) for r in first} == {("pass", "miss")}
    _world(tmp_path / "world", multiplier=3)  # x*2 -> x*3 in a module forward calls
    _check_rebuilt(_run_chain(tmp_path, "r1", "eager,torchscript-trace"), "helper")


@pytest.mark.slow
def test_every_kind_of_change_gives_fresh_entries_and_an_unchanged_model_hits(tmp_path):
    _world(tmp_path / "world")
    _run_chain(tmp_path, "r0", "eager,torchscript-trace,onnxruntime")
    again = _run_chain(tmp_path, "r0-again", "eager,torchscript-trace,onnxruntime")
    assert {r["reference_cache"] for r in again} == {"hit"}
    assert {r["backend_cache"] for r in again if r["backend"] != "eager"} == {"hit"}
    for name, world, scale in _changes():
        _world(tmp_path / "world", **world)
        rows = _run_chain(tmp_path, f"r-{name}", "eager,torchscript-trace,onnxruntime", scale)
        _check_rebuilt(rows, name)


# -- non-determinism named ----------------------------------------------------------


def test_a_non_deterministic_model_is_named_and_blamed_on_the_case(tmp_path):
    _world(tmp_path / "world")
    out = tmp_path / "noisy"
    proc = run_cli(
        "run",
        "--case-file",
        str(BEHAVIOUR),
        "--suite",
        "behaviour",
        "--case",
        "behaviour_noisy",
        "--backend",
        "eager,torchscript-trace",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(out),
        *QUICK,
        env={"TP_BEHAVIOUR_DIR": str(tmp_path / "world")},
    )
    rows = read_rows(out)
    assert len(rows) == 2, proc.stderr
    for row in rows:
        assert row["status"] == "error", row
        assert row["reason"].startswith("non-deterministic model"), row["reason"]
        assert "seeded torch.Generator" in row["reason"]
        assert row["blame"] == "case" and row["nondeterministic"] is True
    assert not list((tmp_path / "cache").rglob("*.pt")), "nothing cached for a model like this"
    assert "non-deterministic model" in (out / "report.html").read_text(encoding="utf-8")


# -- nothing executable in the cache is trusted unchecked ---------------------------

NATIVE = DATA / "native_cases.py"
WRAPPER = "#!/bin/sh\necho planted > '{marker}'\nexec /bin/false\n"


def _plant_runner(tmp_path: Path, source: Path) -> tuple[Path, Path, dict[str, str]]:
    """A wrapper script where the runner of ``source`` is cached, with a seal
    that this user's key did not sign (what someone with write access to the
    cache can do); returns the planted file, its marker and the environment."""
    from torchparity._core import cache
    from torchparity.backends import native_build

    env = {native_build.ENV_CACHE: str(tmp_path / "native"), native_build.ENV_SOURCE: str(source)}
    compiler = native_build.find_compiler()
    assert compiler is not None
    final = tmp_path / "native" / native_build.build_key(compiler, source)
    final.mkdir(parents=True)
    marker = tmp_path / "planted-ran"
    planted = final / native_build.EXE
    planted.write_text(WRAPPER.format(marker=marker), encoding="utf-8")
    planted.chmod(0o755)
    forged = {"sha256": "0" * 64, "fingerprint": "", "hmac": "0" * 64}
    cache.seal_path(planted).write_text(json.dumps(forged), encoding="utf-8")
    return planted, marker, env


def test_a_planted_runner_binary_is_not_executed(tmp_path):
    """The runner's source is broken here, so the rebuild a planted binary
    forces fails in seconds, with the build's error (a real rebuild:
    tests/test_cpp_runner.py)."""
    from torchparity.backends import native_build

    if native_build.toolchain_missing() or sys.platform == "win32":
        pytest.skip(native_build.toolchain_missing() or "a POSIX shell wrapper")
    source = tmp_path / "source"
    shutil.copytree(native_build.SOURCE_DIR, source)
    (source / "CMakeLists.txt").write_text(
        'cmake_minimum_required(VERSION 3.18)\nmessage(FATAL_ERROR "deliberately broken")\n',
        encoding="utf-8",
    )
    planted, marker, env = _plant_runner(tmp_path, source)
    out = tmp_path / "run"
    proc = run_cli(
        "run",
        "--case-file",
        str(NATIVE),
        "--suite",
        "native",
        "--backend",
        "torchscript-cpp",
        "--out",
        str(out),
        *QUICK,
        env={**env, native_build.ENV_BINARY: ""},
    )
    (row,) = read_rows(out)
    assert not marker.exists(), "the planted runner ran"
    assert not planted.exists(), "the planted runner was left in the cache"
    assert row["status"] == "error" and "deliberately broken" in row["reason"], (
        row,
        proc.stderr,
    )
