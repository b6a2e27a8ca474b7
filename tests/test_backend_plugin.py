"""Backends from user plugins, and --backend-option validation."""

import pytest

from tests.backend_runs import DATA, explain, run_rows

PLUGIN = DATA / "plugin_backend.py"


def test_backend_from_a_user_plugin_file(tmp_path, cli):
    listed = cli("list", "backends", "--case-file", str(PLUGIN))
    assert "user-nograd" in listed.stdout
    rows = run_rows(
        tmp_path / "run",
        "--case-file",
        str(PLUGIN),
        "--suite",
        "smoke",
        "--case",
        "mlp",
        "--precision",
        "fp32",
        "--backend",
        "user-nograd",
        "--backend-option",
        "user-nograd.label=hello",
    )
    (row,) = rows
    assert row["status"] == "pass", explain(rows)
    assert row["backend_label"] == "hello" and row["eager_max_abs_diff"] == 0.0


@pytest.mark.parametrize(
    "option, expected",
    [
        ("tensorrt.opset=17", "unknown backend 'tensorrt'; valid: "),
        (
            "onnxruntime.opsett=17",
            "unknown option 'opsett' for backend 'onnxruntime'; valid: opset",
        ),
        ("onnxruntime", "malformed --backend-option 'onnxruntime'; expected BACKEND.KEY=VALUE"),
        ("opset=17", "malformed --backend-option 'opset=17'"),
    ],
)
def test_bad_backend_options_exit_2(cli, option, expected):
    proc = cli("run", "--suite", "smoke", "--backend-option", option, "--quiet")
    assert proc.returncode == 2
    assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
