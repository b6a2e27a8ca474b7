"""What the tests share: one launcher of the real command line and one reader
(and writer) of run directories, both through the product's own contracts."""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchparity._core.rundir import JsonlWriter, RunDir
from torchparity.cli import main

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout first on the path
    (an installed copy may differ), even when the test runs elsewhere."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "torchparity", *args]


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The real command line in a real subprocess, to completion."""
    return subprocess.run(
        cli_command(*args),
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=cwd,
        env=cli_env(env),
        timeout=timeout,
    )


def usage_error(capsys: Any, *argv: object) -> str:
    """The command line in this process (``torchparity.cli.main``) must end in one
    line on stderr, exit 2, no traceback; returns that line."""
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("torchparity: error: "), err
    return lines[0]


def start_cli(*args: str, **popen: Any) -> subprocess.Popen:
    """The real command line started in the background (kill and resume tests)."""
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen(cli_command(*args), env=cli_env(popen.pop("env", None)), **popen)


def read_rows(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of a run directory, as every reader of the product reads them."""
    return RunDir(run_dir).rows()


def read_env(run_dir: Path) -> dict[str, Any]:
    return RunDir(run_dir).read_env()


def write_env(run_dir: Path, env: dict[str, Any]) -> None:
    RunDir(run_dir).create().write_env(env)


def write_rows(run_dir: Path, rows: list[dict[str, Any]], append: bool = False) -> None:
    """Rows into ``run_dir``'s results.jsonl (replacing it unless ``append``)."""
    rd = RunDir(run_dir).create()
    if not append:
        rd.results_jsonl.unlink(missing_ok=True)
    with JsonlWriter(rd.results_jsonl) as writer:
        for row in rows:
            writer.append(row)


# One quick cell per case: cpu, fp32, a short single timing window, in this process.
QUICK = (
    "--device", "cpu", "--precision", "fp32", "--min-time", "0.005", "--rounds", "1", "--no-isolate",
)  # fmt: skip


def quick_run(case_file: Path, suite: str, backends: str, out: Path, *extra: str):
    """``torchparity run`` of ``suite`` from ``case_file`` on ``backends``, QUICK."""
    return run_cli(
        "run", "--case-file", str(case_file), "--suite", suite, "--backend", backends,
        *QUICK, "--out", str(out), *extra,
    )  # fmt: skip


# The timing columns every measured row carries, each a statistic of its samples.
TIMING_STATISTICS = (
    "latency_ms_median",
    "latency_ms_iqr",
    "latency_ms_p90",
    "latency_ms_p99",
    "latency_cv",
    "outliers",
    "repeats",
    "throughput_items_s",
)


def expected_timing(row: dict[str, Any]) -> dict[str, Any]:
    """The timing statistics a row's raw samples give (``samples_ms`` cut by
    ``samples_per_round``; one window: one round), recomputed by the one
    statistics module; the row's batch, or 1 (a multi-sample cell's calls)."""
    from torchparity._core import stats

    samples = [float(x) / 1e3 for x in row["samples_ms"]]
    per_round = row.get("samples_per_round") or [len(samples)]
    assert sum(per_round) == len(samples), row["cell_id"]
    ends = [sum(per_round[:i]) for i in range(len(per_round) + 1)]
    rounds = [samples[a:b] for a, b in zip(ends[:-1], ends[1:], strict=True)]
    columns = stats.latency_columns(rounds, int(row.get("batch") or 1))
    return {k: columns[k] for k in TIMING_STATISTICS}


# -- A faulty machine: a full or read-only file system, for real ----------------


@dataclass(frozen=True)
class Tmpfs:
    """A tmpfs mounted at ``path`` inside a private mount namespace: ``size``
    (tmpfs's ``size=``: "64k", "1m") bounds it (a full disk), ``read_only``
    remounts it read-only once ``files`` (name -> bytes) are written into it."""

    path: Path
    size: str = "1m"
    read_only: bool = False
    files: dict[str, bytes] = field(default_factory=dict)


@functools.lru_cache(maxsize=1)
def _unshare() -> list[str] | None:
    """How this machine makes a private mount namespace: ``unshare -m`` as root
    (CI runs as root, and root ignores chmod), ``unshare -rm`` (a user namespace)
    otherwise; None where neither works (not Linux, no unshare)."""
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return None
    for command in (["unshare", "-m"], ["unshare", "-rm"]):
        probe = subprocess.run(
            [*command, "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt || exit 1"],
            capture_output=True,
        )
        if probe.returncode == 0:
            return command
    return None


def faulty_fs_missing() -> str | None:
    """Why the faulty-file-system tests cannot run here, or None."""
    if _unshare() is None:
        return (
            "no private mount namespace here (needs Linux and unshare -m as root, or unshare -rm)"
        )
    return None


def run_on_faulty_fs(
    mounts: list[Tmpfs],
    *args: str,
    keep: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """The real command line, in a private mount namespace where each of
    ``mounts`` is a fresh tmpfs (full when small, read-only when asked): the
    machine's faults for real, with nothing outside the namespace touched.
    The mounts vanish with the namespace: ``keep`` receives a copy of each
    (``keep/<i>`` for ``mounts[i]``) when the command has ended."""
    unshare = _unshare()
    assert unshare is not None, faulty_fs_missing()
    lines = ["set -e"]
    for m in mounts:
        where = shlex.quote(str(m.path))
        lines += [f"mkdir -p {where}", f"mount -t tmpfs -o size={m.size} tmpfs {where}"]
    if any(m.files for m in mounts):
        lines.append(shlex.join([sys.executable, "-c", _WRITE_FILES, *map(_files_arg, mounts)]))
    lines += [f"mount -o remount,ro {shlex.quote(str(m.path))}" for m in mounts if m.read_only]
    copies = [
        f"cp -a {shlex.quote(str(m.path))}/. {shlex.quote(str(keep / str(i)))}"
        for i, m in enumerate(mounts)
        if keep is not None
    ]
    if keep is not None:
        copies = [
            f"mkdir -p {' '.join(shlex.quote(str(keep / str(i))) for i in range(len(mounts)))}",
            *copies,
        ]
    body = "\n".join([*lines, "set +e", '"$@"', "code=$?", *copies, 'exit "$code"'])
    return subprocess.run(
        [*unshare, "sh", "-c", body, "sh", *cli_command(*args)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=cli_env(env),
        timeout=timeout,
    )


def _files_arg(mount: Tmpfs) -> str:
    return json.dumps({str(mount.path / k): v.hex() for k, v in mount.files.items()})


_WRITE_FILES = (
    "import json, pathlib, sys\n"
    "for arg in sys.argv[1:]:\n"
    "    for name, data in json.loads(arg).items():\n"
    "        p = pathlib.Path(name); p.parent.mkdir(parents=True, exist_ok=True)\n"
    "        p.write_bytes(bytes.fromhex(data))\n"
)
