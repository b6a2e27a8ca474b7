"""Cluster fan-out: `--shard auto` under Slurm's and Kubernetes' variables, and
docs/scale-out.md's job scripts run as written (the selection made small by a
`torchparity` on PATH that appends options; argparse's last value wins)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import DATA, ROOT, read_rows
from torchparity._core.rundir import RunDir
from torchparity.axes.scheduler_env import SchedulerEnvError, shard_from_env
from torchparity.cli import main

SLURM = {"SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "7", "SLURM_ARRAY_TASK_COUNT": "8"}


@pytest.mark.parametrize(
    "env, spec, expected",
    [
        ({**SLURM, "SLURM_ARRAY_TASK_ID": "0"}, "auto", (1, 8)),
        ({**SLURM, "SLURM_ARRAY_TASK_ID": "7"}, "auto", (8, 8)),
        (
            {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "4"},
            "auto",
            (3, 4),
        ),
        (
            {
                "SLURM_ARRAY_TASK_ID": "8",
                "SLURM_ARRAY_TASK_MIN": "0",
                "SLURM_ARRAY_TASK_MAX": "12",
                "SLURM_ARRAY_TASK_STEP": "4",
            },
            "auto",
            (3, 4),
        ),  # --array=0-12:4
        ({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3"}, "auto:3", (3, 3)),
        ({"JOB_COMPLETION_INDEX": "0", "TORCHPARITY_SHARD_COUNT": "4"}, "auto", (1, 4)),
        ({"JOB_COMPLETION_INDEX": "3"}, "auto:4", (4, 4)),
    ],
)
def test_shard_auto_reads_the_scheduler(env, spec, expected):
    assert shard_from_env(spec, env)[:2] == expected


@pytest.mark.parametrize(
    "env, spec, message",
    [
        ({}, "auto", "SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT"),
        (
            {
                "SLURM_ARRAY_TASK_ID": "4",
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_MAX": "9",
                "SLURM_ARRAY_TASK_COUNT": "3",
            },
            "auto",
            "evenly spaced",
        ),  # --array=1,4,9
        ({"SLURM_ARRAY_TASK_ID": "4"}, "auto", "SLURM_ARRAY_TASK_COUNT"),
        ({**SLURM, "SLURM_ARRAY_TASK_ID": "1"}, "auto:4", "8 tasks"),
        ({"JOB_COMPLETION_INDEX": "1"}, "auto", "TORCHPARITY_SHARD_COUNT"),
        ({"JOB_COMPLETION_INDEX": "4"}, "auto:4", "outside 0..3"),
        ({"JOB_COMPLETION_INDEX": "x", "TORCHPARITY_SHARD_COUNT": "2"}, "auto", "not an integer"),
        ({}, "auto:0", "malformed shard"),
    ],
)
def test_shard_auto_says_what_it_looked_for(env, spec, message):
    with pytest.raises(SchedulerEnvError, match=message):
        shard_from_env(spec, env)


def test_shard_auto_outside_a_scheduler_is_exit_2_naming_the_variables(
    monkeypatch, capsys, tmp_path
):
    for name in ("SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"):
        monkeypatch.delenv(name, raising=False)
    code = main(
        [
            "run",
            "--case-file",
            str(DATA / "tiny_cases.py"),
            "--suite",
            "tiny",
            "--device",
            "cpu",
            "--shard",
            "auto",
            "--out",
            str(tmp_path / "r"),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "SLURM_ARRAY_TASK_ID" in err and "JOB_COMPLETION_INDEX" in err and "--shard i/n" in err


def _doc() -> str:
    return (ROOT / "docs" / "scale-out.md").read_text(encoding="utf-8")


def _block_after(marker: str, lang: str) -> str:
    text = _doc()
    return text[text.index(marker) :].split(f"```{lang}\n", 1)[1].split("```", 1)[0]


def _small_torchparity(tmp_path: Path) -> dict[str, str]:
    """PATH with a `torchparity` that runs this checkout on the tiny suite."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    small = (
        f'--case-file "{DATA / "tiny_cases.py"}" --suite tiny --backend eager --precision fp32 '
        "--no-isolate --min-time 0.01"
    )
    shim = bin_dir / "torchparity"
    shim.write_text(
        f'#!/usr/bin/env bash\nif [ "$1" = run ]; then exec "{sys.executable}" -m torchparity '
        f'"$@" {small}; fi\nexec "{sys.executable}" -m torchparity "$@"\n',
        encoding="utf-8",
    )
    shim.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
    }


def _merged_cases(path: Path) -> set[str]:
    """A merged report's cases (a merge writes results.csv, not results.jsonl)."""
    import pandas as pd

    return set(pd.read_csv(path / "results.csv").case)


needs_bash = pytest.mark.skipif(
    os.name == "nt" or not shutil.which("bash"),
    reason="the job scripts are bash (Linux cluster nodes)",
)


@pytest.mark.slow
@needs_bash
def test_the_slurm_array_script_and_merge_job_run_as_documented(tmp_path):
    shards = tmp_path / "torchparity-shards.sbatch"
    shards.write_text(_block_after("`torchparity-shards.sbatch`", "bash"), encoding="utf-8")
    merge = tmp_path / "torchparity-merge.sbatch"
    merge.write_text(_block_after("`torchparity-merge.sbatch`", "bash"), encoding="utf-8")
    assert "#SBATCH --array=0-7" in shards.read_text(encoding="utf-8")
    env = {
        **_small_torchparity(tmp_path),
        "TORCHPARITY_RUNS": str(tmp_path / "runs"),
        "SLURM_ARRAY_JOB_ID": "4242",
        "SLURM_CPUS_PER_TASK": "1",
        **SLURM,
        "SLURM_ARRAY_TASK_COUNT": "2",
        "SLURM_ARRAY_TASK_MAX": "1",
    }  # a 2-task array here
    # Task 1 of the array (test_sharding shows that shards are disjoint and merge whole).
    proc = subprocess.run(
        ["bash", str(shards)],
        env={**env, "SLURM_ARRAY_TASK_ID": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--shard auto: 2/2 (Slurm array task 1 of 0..1)" in proc.stderr
    proc = subprocess.run(
        ["bash", str(merge)],
        env={**env, "ARRAY_JOB_ID": "4242"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    runs = tmp_path / "runs" / "4242"
    assert {r["case"] for r in read_rows(runs / "shard-1")} == {"tiny_linear"}  # 2nd sorted name
    assert _merged_cases(runs / "merged") == {"tiny_linear"}
    assert RunDir(runs / "shard-1").read_selection()["shard"] == "2/2"  # resolved for --resume
    assert oct((runs / "cache").stat().st_mode & 0o777) == oct(0o700)  # umask 077: this user only


@pytest.mark.slow
@needs_bash
def test_the_kubernetes_indexed_job_runs_as_documented(tmp_path):
    yaml = pytest.importorskip("yaml")
    shard_job, merge_job = yaml.safe_load_all(_block_after("## Kubernetes", "yaml"))
    spec = shard_job["spec"]
    assert spec["completionMode"] == "Indexed"
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert int(env["TORCHPARITY_SHARD_COUNT"]) == spec["completions"]
    mount = container["volumeMounts"][0]
    merge_container = merge_job["spec"]["template"]["spec"]["containers"][0]
    assert merge_container["volumeMounts"][0] == mount
    assert spec["template"]["spec"]["volumes"] == merge_job["spec"]["template"]["spec"]["volumes"]

    # Pod of completion index 1 and the merge pod, with the volume at a temporary path.
    volume = str(tmp_path / "volume")
    Path(volume).mkdir()
    shell = _small_torchparity(tmp_path)
    script = container["args"][0].replace(mount["mountPath"], volume)
    proc = subprocess.run(
        [*container["command"], script],
        capture_output=True,
        text=True,
        timeout=300,
        env={**shell, **env, "JOB_COMPLETION_INDEX": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert f"--shard auto: 2/{spec['completions']} (Kubernetes Indexed Job" in proc.stderr
    merge_script = merge_container["args"][0].replace(mount["mountPath"], volume)
    proc = subprocess.run(
        [*merge_container["command"], merge_script],
        env=shell,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert _merged_cases(Path(volume) / "merged") == {"tiny_linear"}  # sorted names: the 2nd of 8
