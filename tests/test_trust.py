"""A cache and a run directory that cannot lie or be turned against the user,
through the public command line: cached entries are keyed on what the model
computes, nothing executable in the cache runs unchecked, a run writes inside
its directory only, hostile rows cost bounded work, and a model that does not
reproduce itself is named."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import DATA, read_rows, run_cli

BEHAVIOUR = DATA / "behaviour_cases.py"
LOG_LIMIT = "TORCHPARITY_WORKER_LOG_LIMIT"
QUICK = ("--device", "cpu", "--precision", "fp32", "--min-time", "0.01", "--no-isolate")


# -- cache entries keyed on what the model does -------------------------------------


def _world(root: Path, multiplier: int = 2, k: int = 4, act: str = "tanh") -> Path:
    """The helper module and config the behaviour case reads (never its own file)."""
    root.mkdir(exist_ok=True)
    helper = f"def finish(x):\n    return x * {multiplier}\n"
    (root / "behaviour_helper.py").write_text(helper, encoding="utf-8")
    (root / "config.json").write_text(json.dumps({"k": k, "act": act}), encoding="utf-8")
    return root


def _run_behaviour(
    tmp_path: Path, name: str, case: str, backends: str, *extra: str, env: dict[str, str]
) -> list[dict]:
    """One case of the behaviour suite on the real command line; its rows."""
    out = tmp_path / name
    proc = run_cli(
        "run",
        "--case-file",
        str(BEHAVIOUR),
        "--suite",
        "behaviour",
        "--case",
        case,
        "--backend",
        backends,
        "--out",
        str(out),
        "--device",
        "cpu",
        "--precision",
        "fp32",
        *extra,
        env={"TP_BEHAVIOUR_DIR": str(tmp_path / "world"), **env},
    )
    rows = read_rows(out)
    assert rows, proc.stderr
    return rows


def _run_chain(tmp_path: Path, name: str, backends: str, scale: str = "1") -> list[dict]:
    cached = ("--cache-dir", str(tmp_path / "cache"), "--min-time", "0.01", "--no-isolate")
    env = {"TP_BEHAVIOUR_SCALE": scale}
    return _run_behaviour(tmp_path, name, "behaviour_chain", backends, *cached, env=env)


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
    assert {r["status"] for r in first} == {"pass"}
    _world(tmp_path / "world", multiplier=3)  # x*2 -> x*3 in a module forward calls
    _check_rebuilt(_run_chain(tmp_path, "r1", "eager,torchscript-trace"), "helper")
    assert {r["reference_cache"] for r in first} == {"miss"}


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
    quick = ("--cache-dir", str(tmp_path / "cache"), "--min-time", "0.01", "--no-isolate")
    rows = _run_behaviour(
        tmp_path, "noisy", "behaviour_noisy", "eager,torchscript-trace", *quick, env={}
    )
    out = tmp_path / "noisy"
    assert len(rows) == 2
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

    env = {"TORCHPARITY_CACHE_DIR": str(tmp_path / "cache"), native_build.ENV_SOURCE: str(source)}
    compiler = native_build.find_compiler()
    assert compiler is not None
    final = native_build.runner_root(tmp_path / "cache") / native_build.build_key(compiler, source)
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


# -- a run writes inside its run directory only -------------------------------------

TINY = DATA / "tiny_cases.py"


def _resumable(out: Path) -> dict:
    """A run directory with one of two cells done, as an interrupted run leaves it."""
    from torchparity._core.rundir import RunDir

    rd = RunDir(out).create()
    rd.write_selection(
        {
            "suite": "tiny",
            "case": ["tiny_linear"],
            "backend": ["eager"],
            "device": ["cpu"],
            "precision": ["fp32", "fp64"],
            "min_time": 0.01,
            "isolate": False,
            "plugins": [["file", str(TINY.resolve())]],
        }
    )
    rd.write_env({"host": "h", "os": "os", "torch": "0", "run_id": "run"})
    done = {
        "case": "tiny_linear",
        "kind": "model",
        "suite": "tiny",
        "device": "cpu",
        "precision": "fp64",
        "backend": "eager",
        "status": "pass",
        "reason": "",
        "cell_id": "tiny_linear|cpu|fp64|eager",
    }
    with rd.results_writer() as writer:
        writer.append(done)
    return done


@pytest.mark.parametrize("name", ["results.jsonl", "outputs", "worker.log", "localization"])
def test_resume_refuses_a_run_directory_that_links_outside(tmp_path, capsys, name):
    from torchparity.cli import main

    out, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    _resumable(out)
    elsewhere.mkdir()
    target = elsewhere / name
    if name in ("outputs", "localization"):
        target.mkdir()
    elif (out / name).exists():
        (out / name).replace(target)
    else:
        target.write_text("", encoding="utf-8")
    before = {p: p.read_bytes() for p in elsewhere.rglob("*") if p.is_file()}
    (out / name).symlink_to(target)
    code = main(["run", "--resume", "--out", str(out), "--case-file", str(TINY)])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("torchparity: error: "), err
    assert "symbolic link" in lines[0] and name in lines[0], lines[0]
    after = {p: p.read_bytes() for p in elsewhere.rglob("*") if p.is_file()}
    assert after == before, "nothing was written outside the run directory"
    assert not (out / "run.lock").exists()


def test_a_write_through_a_link_made_during_a_run_is_refused(tmp_path):
    """Every write checks its path, not only the check before the run: a link
    planted later is refused where it is met."""
    import torch

    from torchparity._core.rundir import RunDir, RunDirUnsafe

    rd = RunDir(tmp_path / "run").create()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    writes = {
        "outputs": lambda: rd.save_outputs("cell", ["out"], [torch.zeros(2)]),
        "samples": lambda: rd.sample_file("cell"),
        "localization": lambda: rd.localization_file("cell", ".csv"),
        "errors": lambda: rd.bounded({"cell_id": "c", "reason": "x" * 10_000}),
        "worker.log": rd.open_worker_log,
        "results.jsonl": lambda: rd.results_writer().__enter__(),
    }
    for name, write in writes.items():
        link = rd.path / name
        link.symlink_to(elsewhere)
        with pytest.raises(RunDirUnsafe, match="symbolic link"):
            write()
        link.unlink()
    assert not list(elsewhere.iterdir())


# -- bounded work on hostile data ---------------------------------------------------


def _row(case: str, backend: str = "eager") -> dict:
    return {
        "case": case,
        "kind": "model",
        "suite": "s",
        "device": "cpu",
        "precision": "fp32",
        "backend": backend,
        "status": "fail",
        "reason": "r" * 600_000,
        "cell_id": f"{case}|cpu|fp32|{backend}",
        "traceback": "t" * 1_000_000,
    }


def test_report_on_rows_with_huge_names_is_quick_and_small(tmp_path):
    """Rows written by something else than torchparity's writer: a 10 MB case
    name, and 60 cells with 100 KB names (more than the page's limit)."""
    run = tmp_path / "run"
    run.mkdir()
    lines = [_row("n" * 10_000_000)] + [_row(f"{i}" + "x" * 100_000) for i in range(60)]
    with open(run / "results.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in lines)
    (run / "env.json").write_text("{}", encoding="utf-8")
    began = time.perf_counter()
    proc = run_cli("report", str(run), timeout=240)
    seconds = time.perf_counter() - began
    assert proc.returncode == 0, proc.stderr
    size = (run / "report.html").stat().st_size
    assert size < 5_000_000, size
    assert (run / "summary.md").stat().st_size < 5_000_000
    assert seconds < 120, seconds


@pytest.mark.parametrize("bad", ["{}", '{"case": "x"}', '{"status": "pass"}'])
def test_a_line_that_is_not_a_row_is_an_error_naming_the_line(tmp_path, capsys, bad):
    run = tmp_path / "run"
    run.mkdir()
    good = {**_row("ok"), "reason": "", "traceback": ""}
    (run / "results.jsonl").write_text(json.dumps(good) + "\n" + bad + "\n", encoding="utf-8")
    (run / "env.json").write_text("{}", encoding="utf-8")
    from torchparity.cli import main

    for argv in (["report", str(run)], ["compare", str(run), str(run)]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "line 2" in lines[0] and "not a row" in lines[0], lines


@pytest.mark.slow
def test_worker_log_keeps_its_tail_and_says_how_much_was_cut(tmp_path):
    _world(tmp_path / "world")
    limit = 100_000
    (row,) = _run_behaviour(
        tmp_path,
        "run",
        "behaviour_chatty",
        "eager",
        "--min-time",
        "0.3",
        env={LOG_LIMIT: str(limit)},
    )
    assert row["status"] == "pass", row.get("reason")
    out = tmp_path / "run"
    printed = 65_536 * row["iterations"]  # the timed calls alone
    log = (out / "worker.log").read_bytes()
    assert printed > 20 * limit, printed
    assert len(log) < 10 * limit, (len(log), printed)
    assert log.startswith(b"-- worker.log: ") and b"bytes of earlier output cut" in log[:200]


def test_cap_keeps_the_tail_of_a_log_and_counts_every_cut(tmp_path):
    from torchparity._core.rundir import RunDir

    rd = RunDir(tmp_path).create()
    lines = [f"line {i}\n".encode() for i in range(200_000)]
    rd.worker_log.write_bytes(b"".join(lines))
    total = rd.worker_log.stat().st_size
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(LOG_LIMIT, "100000")
        first = rd.cap_worker_log()
        log = rd.worker_log.read_bytes()
        assert first > total - 100_000 and len(log) <= 100_000 // 4 + 200
        assert log.endswith(b"line 199999\n") and f"-- worker.log: {first} bytes".encode() in log
        with open(rd.worker_log, "ab") as fh:
            fh.write(b"".join(lines))
        second = rd.cap_worker_log()
        head = rd.worker_log.read_bytes().splitlines()[0]
        assert head.startswith(f"-- worker.log: {first + second} bytes".encode()), head
