"""The model zoo suite: its listing, two architectures end to end through the
command line, cells that skip when a model library is missing, its
expectations files, and the compatibility matrix (docs/zoo.md) rendered
from a run directory."""

from __future__ import annotations

import json
import sys

import pytest

from tests.helpers import QUICK, read_rows, run_cli, usage_error, write_env, write_rows
from torchparity._core.status import BAD_STATUSES
from torchparity.report import zoo as zoo_report
from torchparity.report.report import report_html
from torchparity.verdicts import blame, expectations

SUITE_DIR = "src/torchparity/suites/zoo"


def _listed(suite: str) -> list[str]:
    proc = run_cli("list", "cases", "--suite", suite)
    assert proc.returncode == 0, proc.stderr
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def test_the_zoo_lists_at_least_30_architectures_and_a_ci_selection_of_10() -> None:
    full, ci = _listed("zoo"), _listed("zoo-ci")
    assert all(name.startswith("zoo.") for name in full)
    for family in ("zoo.bert", "zoo.gpt2", "zoo.llama_kv_cache", "zoo.t5", "zoo.whisper"):
        assert family in full
    architectures = {n for n in full if not n.endswith("_kv_cache")}
    assert len(architectures) >= 30, full
    assert len(ci) == 10 and set(ci) <= set(full), ci


@pytest.fixture(scope="module")
def zoo_run(tmp_path_factory):
    """Two zoo architectures (a text encoder with a padded mask, a CNN) on eager."""
    pytest.importorskip("transformers", reason="transformers is not installed (zoo extra)")
    out = tmp_path_factory.mktemp("zoo") / "run"
    proc = run_cli(
        "run", "--suite", "zoo", "--case", "zoo.bert", "--case", "zoo.resnet",
        "--backend", "eager", *QUICK, "--out", str(out), "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return out


def test_zoo_models_run_with_keyword_inputs_through_the_command_line(zoo_run) -> None:
    rows = {r["case"]: r for r in read_rows(zoo_run)}
    assert set(rows) == {"zoo.bert", "zoo.resnet"}
    assert {r["status"] for r in rows.values()} == {"pass"}, [
        r.get("reason") for r in rows.values()
    ]
    assert rows["zoo.bert"]["leaf_names"] == ["['last_hidden_state']", "['pooler_output']"]
    assert all(r["suite"] == "zoo" and r["latency_ms_median"] > 0 for r in rows.values())


def test_the_matrix_is_generated_from_a_real_run(zoo_run, tmp_path) -> None:
    target = tmp_path / "zoo.md"
    proc = run_cli("report", str(zoo_run), "--zoo-matrix", str(target))
    assert proc.returncode == 0, proc.stderr
    text = target.read_text(encoding="utf-8")
    assert "| architecture | eager |" in text
    for arch in ("bert", "resnet"):
        line = next(x for x in text.splitlines() if x.startswith(f"| {arch} |"))
        assert "pass ·" in line and " ms" in line, line
    page = (zoo_run / "report.html").read_text(encoding="utf-8")
    assert page.index("Model zoo compatibility") < page.index("Run and environment")


def test_without_the_model_library_the_cells_skip_with_the_reason(tmp_path) -> None:
    """transformers hidden from the process; torchvision is not installed in the test env."""
    out = tmp_path / "run"
    code = (
        "import sys; sys.modules['transformers'] = None\n"
        "from torchparity.cli import main\n"
        f"sys.exit(main({['run', '--suite', 'zoo', '--case', 'zoo.bert', '--case', 'zoo.torchvision_resnet18', '--backend', 'eager', *QUICK, '--out', str(out), '--quiet']!r}))\n"
    )
    import subprocess

    from tests.helpers import cli_env

    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    rows = {r["case"]: r for r in read_rows(out)}
    assert rows["zoo.bert"]["status"] == "skip"
    assert (
        "transformers is not installed (pip install 'torchparity[zoo]')"
        in rows["zoo.bert"]["reason"]
    )
    if "torchvision" not in sys.modules:
        tv = rows["zoo.torchvision_resnet18"]
        assert tv["status"] == "skip" and "torchvision is not installed" in tv["reason"], tv
    assert {r["blame"] for r in rows.values()} == {"environment"}


def test_calibrated_batchnorm_keeps_a_deep_stack_input_dependent() -> None:
    """MobileViT with random running statistics computes a constant; calibrated, it does
    not, and its weights are the same on every build."""
    pytest.importorskip("transformers", reason="transformers is not installed (zoo extra)")
    import torch

    from torchparity.cases.case import CASES, load_plugin
    from torchparity.cases.reference import build_inputs, build_module

    load_plugin(("module", "torchparity.suites.zoo"))
    case = CASES["zoo.mobilevit"]
    first, second = build_module(case, 0).double(), build_module(case, 0).double()
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with torch.no_grad():
        out = [first(*build_inputs(case, 0, draw=d)).last_hidden_state for d in ("", "other")]
    assert (out[0] - out[1]).abs().max() > 1e-3 * out[0].abs().max()


@pytest.mark.parametrize("name", ["expectations.json", "expectations-ci.json"])
def test_expectations_name_zoo_cells_with_a_blame_and_a_reason(name: str) -> None:
    from tests.helpers import ROOT
    from torchparity.cases.case import SUITES, load_plugin

    load_plugin(("module", "torchparity.suites.zoo"))
    entries = expectations.load(ROOT / SUITE_DIR / name)
    cases = set(SUITES["zoo-ci" if "ci" in name else "zoo"])
    for e in entries:
        assert e.case in cases, e
        assert e.blame in blame.CATEGORIES and e.reason and e.status in BAD_STATUSES, e
    assert len({e.key() for e in entries}) == len(entries)


# --- the matrix from a small run directory ---------------------------------------


def _row(case: str, backend: str, status: str, **extra) -> dict:
    cell = {"case": f"zoo.{case}", "kind": "model", "suite": "zoo", "device": "cpu"}
    cell |= {"precision": "fp32", "backend": backend, "mode": "infer"}
    cell_id = f"{cell['case']}|cpu|fp32|{backend}"
    return {**cell, "cell_id": cell_id, "status": status, **extra}


ROWS = [
    *(_row("torchvision_resnet18", b, "skip", blame="environment",
           reason="torchvision is not installed (pip install torchvision)")
      for b in ("eager", "onnxruntime")),
    _row("bert", "eager", "pass", tolerance_used=0.0, latency_ms_median=1.25),
    _row("bert", "onnxruntime", "pass", tolerance_used=0.031, speedup_vs_eager=2.4),
    _row("bert", "compile", "xfail", xfail_of="error", blame="inductor", expectation="expected",
         reason="known: C++ compile fails (http://x); was error: prepare: CppCompileError: boom"),
    _row("whisper", "eager", "pass", tolerance_used=0.0, latency_ms_median=9.0),
    _row("whisper", "onnxruntime", "fail", blame="exporter", expectation="new failure",
         reason="rel_l2 3e-3 over bound 9.5e-7"),
    _row("whisper", "compile", "pass", expectation="unexpected pass", tolerance_used=0.2,
         speedup_vs_eager=1.1, reason="unexpected pass: expected error (x)"),
]  # fmt: skip


def test_the_matrix_from_a_small_run_directory(tmp_path) -> None:
    """Skip rows come first in a run (no worker needed); their architecture comes last."""
    run = tmp_path / "run"
    write_rows(run, [*ROWS, {**_row("other", "eager", "pass"), "suite": "models"}])
    write_env(run, {"torch": "2.13.0", "transformers": "5.25.0", "cores": 2, "os": "Linux"})
    target = tmp_path / "docs" / "zoo.md"
    target.parent.mkdir()
    target.write_text(f"old matrix\n{zoo_report.END_MARKER}\n\n## The zoo suite\nprose\n", "utf-8")
    proc = run_cli("report", str(run), "--zoo-matrix", str(target))
    assert proc.returncode == 0, proc.stderr
    text = target.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert "| architecture | eager | onnxruntime | compile |" in lines
    assert "| bert | pass · 0 · 1.25 ms | pass · 0.031 · 2.4x | error (inductor) \\[1\\] |" in lines
    assert (
        "| whisper | pass · 0 · 9 ms | fail (exporter) \\[2\\] | pass · 0.2 · 1.1x \\[3\\] |"
        in lines
    )
    # one note for the cells of an architecture that share status, blame and reason
    skip = "skip (environment) \\[4\\]"
    assert f"| torchvision_resnet18 | {skip} | {skip} |  |" in lines
    assert "| 4 | torchvision_resnet18 | eager, onnxruntime | skip | environment |  |" in text
    assert "other" not in text  # another suite's rows are not the zoo's
    # the notes: the cell's own reason, without the expectation's preamble
    assert (
        "| 1 | bert | compile | error | inductor | expected | prepare: CppCompileError: boom |"
        in lines
    )
    assert "| 2 | whisper | onnxruntime | fail | exporter | new failure |" in text
    # non-pass cells by blame; the unexpected pass is a note but no blamed cell
    assert "| environment | 2 |" in lines and "| inductor | 1 |" in lines
    assert (
        "| 3 | whisper | compile | pass |  | unexpected pass | unexpected pass: expected error (x) |"
        in lines
    )
    assert "transformers 5.25.0" in text
    # the hand-written text after the marker is kept, the old matrix replaced
    assert "old matrix" not in text and text.endswith("## The zoo suite\nprose\n")
    counts = next(x for x in lines if x.startswith("| onnxruntime |"))
    assert "| path | pass | fail | error | skip |" in lines
    assert counts == "| onnxruntime | 1 | 1 | 0 | 1 |", counts


DEPLOY_ROWS = [  # written in another order than the matrix shows them
    _row("bert", "onnxruntime-web", "skip", blame="environment",
         reason="no Chromium or Chrome on PATH (or $TORCHPARITY_CHROMIUM) to run onnxruntime-web in"),
    _row("bert", "openvino", "xfail", xfail_of="fail", blame="openvino", expectation="expected",
         reason="known: x; was fail: ['logits']: relative L2 error 2e-06 > 9.54e-07",
         backend_openvino="2026.4.1"),
    _row("bert", "onnxruntime-node", "pass", tolerance_used=0.2, speedup_vs_eager=3.0,
         backend_onnxruntime_node="1.23.2", backend_node="v20.20.2"),
    _row("bert", "executorch", "pass", tolerance_used=0.1, speedup_vs_eager=1.5,
         backend_executorch="1.5.1"),
    _row("bert", "aoti", "pass", tolerance_used=0.1, speedup_vs_eager=2.0),
    _row("bert", "eager", "pass", tolerance_used=0.0, latency_ms_median=1.25),
    _row("vit", "onnxruntime-web", "pass", tolerance_used=0.3, speedup_vs_eager=0.5,
         backend_onnxruntime_web="1.23.2", backend_browser="Chromium 156.0.8078.114"),
]  # fmt: skip


def test_the_deployment_runtimes_come_after_the_other_paths_with_their_versions(tmp_path):
    run = tmp_path / "run"
    write_rows(run, DEPLOY_ROWS)
    write_env(run, {"torch": "2.13.0", "transformers": "5.25.0", "python": "3.11.7"})
    target = tmp_path / "zoo.md"
    proc = run_cli("report", str(run), "--zoo-matrix", str(target))
    assert proc.returncode == 0, proc.stderr
    lines = target.read_text(encoding="utf-8").splitlines()
    paths = "eager | aoti | executorch | openvino | onnxruntime-node | onnxruntime-web"
    assert f"| architecture | {paths} |" in lines
    bert = next(x for x in lines if x.startswith("| bert |"))
    assert bert == (
        "| bert | pass · 0 · 1.25 ms | pass · 0.1 · 2x | pass · 0.1 · 1.5x | fail (openvino) \\[1\\]"
        " | pass · 0.2 · 3x | skip (environment) \\[2\\] |"
    ), bert
    assert "| vit |  |  |  |  |  | pass · 0.3 · 0.5x |" in lines
    assert "| openvino | 0 | 1 | 0 |" in lines and "| onnxruntime-web | 1 | 0 | 1 |" in lines
    versions = (
        "torch 2.13.0, transformers 5.25.0, executorch 1.5.1, openvino 2026.4.1, "
        "onnxruntime-node 1.23.2, node v20.20.2, onnxruntime-web 1.23.2, "
        "Chromium 156.0.8078.114, python 3.11.7;"
    )
    assert versions in lines[4], lines[4]


def test_a_cell_in_several_merged_runs_shows_the_last_row() -> None:
    later = _row("bert", "onnxruntime", "fail", blame="onnxruntime", reason="rel_l2 over bound")
    matrix, notes = zoo_report.build([*ROWS, {**later, "platform": "second run"}])
    bert = matrix.set_index("architecture").loc["bert"]
    assert bert["onnxruntime"].startswith("fail (onnxruntime)") and len(matrix) == 3
    assert list(matrix["architecture"]) == ["bert", "whisper", "torchvision_resnet18"]


def test_the_html_report_opens_with_the_zoo_matrix_only_when_the_zoo_ran() -> None:
    page = report_html(ROWS)
    assert page.index("Model zoo compatibility") < page.index("Run and environment")
    assert "Model zoo compatibility" not in report_html([{**ROWS[0], "suite": "models"}])


def test_a_run_without_zoo_cells_is_refused(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    write_rows(run, [{**_row("bert", "eager", "pass"), "suite": "models"}])
    line = usage_error(capsys, "report", run, "--zoo-matrix", tmp_path / "zoo.md")
    assert "holds no zoo cells" in line and not (tmp_path / "zoo.md").exists()
    assert "is a directory" in usage_error(capsys, "report", run, "--zoo-matrix", tmp_path)


def test_expectations_files_are_json_with_the_torch_version() -> None:
    from tests.helpers import ROOT

    for name in ("expectations.json", "expectations-ci.json"):
        data = json.loads((ROOT / SUITE_DIR / name).read_text(encoding="utf-8"))
        assert data["torch"] and isinstance(data["entries"], list)
