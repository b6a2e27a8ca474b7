"""Generation parity (--mode generate, docs/generation.md): prompts, the
cache path, the verdict and the mode end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from torchparity.backends.generation import GenerationPath, Prompts, greedy
from torchparity.cases.generation import Generation, generation_module, make_prompts

transformers = pytest.importorskip("transformers")

VOCAB = 64


CASES_FILE = Path(__file__).parent / "data" / "generation_cases.py"


def tiny_llama() -> torch.nn.Module:
    """The data file's tiny Llama (a user's case file, loaded as ``--case-file`` loads it)."""
    from torchparity.cases.case import CASES, load_plugin

    load_plugin(("file", str(CASES_FILE)))
    return CASES["gen.tiny"].make_module()


def test_prompts_are_left_padded_and_deterministic():
    spec = Generation(VOCAB, prompt_lengths=(9, 4))
    a, b = make_prompts(spec, "case", 0), make_prompts(spec, "case", 0)
    assert torch.equal(a.input_ids, b.input_ids)
    assert a.attention_mask.tolist()[1] == [0] * 5 + [1] * 4
    assert (a.input_ids[1, :5] == spec.pad_token_id).all()
    assert (a.input_ids[a.attention_mask == 1] != spec.pad_token_id).all()
    one = a.select(slice(1, 2))  # batch 1: the padding every row has is dropped
    assert one.input_ids.shape == (1, 4) and one.attention_mask.all()


def test_cache_path_decode_matches_full_prefill():
    """The eager path's incremental logits equal one full prefill's (fp64)."""
    from torchparity.backends.hf_cache_path import HFCachePath

    spec = Generation(VOCAB, prompt_lengths=(7, 3))
    model = generation_module(spec, tiny_llama, "llama", 0).double()
    prompts = make_prompts(spec, "llama", 0)
    path = HFCachePath(model)
    assert isinstance(path, GenerationPath)
    with torch.no_grad():
        logits, state = path.prefill(prompts)
        tokens, steps = [greedy(logits[:, -1])], [logits[:, -1]]
        for _ in range(3):
            step, state = path.decode(tokens[-1], state)
            tokens.append(greedy(step))
            steps.append(step)
        fed = torch.stack(tokens[:-1], dim=1)
        longer = Prompts(
            torch.cat([prompts.input_ids, fed], dim=1),
            torch.cat([prompts.attention_mask, torch.ones_like(fed)], dim=1),
        )
        full, _ = path.prefill(longer)
    torch.testing.assert_close(full[:, -4:], torch.stack(steps, dim=1), rtol=0, atol=1e-10)
    # The head is scaled: greedy is decisive, not a walk over near-ties.
    top = torch.stack(steps).topk(2, dim=-1).values
    assert float((top[..., 0] - top[..., 1]).median()) > 0.05


# -- the mode, end to end (in process, through the one cell runner) -----------------


def generate(
    case: str,
    backend: str,
    tmp_path,
    batch: int = 0,
    precision: str = "fp32",
    localize: bool = False,
) -> dict:
    """One generate cell's finished row (known failures, blame), its run dir under tmp_path."""
    from torchparity.axes.matrix import Cell
    from torchparity.cases.case import load_plugin
    from torchparity.cell.context import RunSettings
    from torchparity.cell.execute import execute_cell, finish_row
    from torchparity.timing.timer import TimingConfig

    load_plugin(("file", str(CASES_FILE)))
    cell = Cell(case, "model", "", "cpu", precision, backend, "generate", sweep_batch=batch)
    settings = RunSettings(timing=TimingConfig(min_time=0.0), output_dir=tmp_path)
    after = None
    if localize:
        from torchparity.diagnose.after import after_cell as after
    return dict(finish_row(cell, execute_cell(cell, settings, after), {}))


def test_corrupt_cache_fails_at_its_step(tmp_path):
    """A plugin backend corrupting the cache from decode step 2 on fails, first divergence 2."""
    row = generate("gen.tiny", "corrupt-cache", tmp_path)
    assert row["status"] == "fail", row["reason"]
    assert row["first_divergent_step"] == 2
    assert row["tokens_agree"] < 1.0 and row["cache_kind"] == "dynamic-cache"
    assert row["decode_input_len"] == 1 and row["mode"] == "generate"
    assert row["blame"] != "case"
    assert row["culprit"].startswith("kv-cache (decode step 2")


@pytest.mark.slow
def test_the_divergent_decode_step_goes_to_the_layer_localizer(tmp_path):
    """The failing cell's decode step 2, with its cache inputs, through localize.py:
    every layer's forward is right there (the fault is the cache), so the verdict's
    culprit stands beside the layer table (minutes on 2 cores)."""
    from torchparity._core.rundir import RunDir

    row = generate("gen.tiny", "corrupt-cache", tmp_path, localize=True)
    assert row["localization_file"] and "localize_error" not in row, row.get("localize_error")
    assert row["culprit"].startswith("kv-cache (decode step 2")
    (record,) = RunDir(tmp_path).localizations()
    assert record["layers"] and record["notes"][0].startswith("decode step 2")


def test_off_by_one_model_is_the_cases_error(tmp_path):
    row = generate("gen.off_by_one", "eager", tmp_path)
    assert row["status"] == "error" and row["blame"] == "case", row["reason"]
    assert "own cache path differs from its full path" in row["reason"]
    assert row["model_incremental_rel_l2"] > 1e-3


def test_near_tie_flip_passes_with_its_margin(tmp_path):
    from torchparity._core.rundir import RunDir

    row = generate("gen.tiny", "tie-flip", tmp_path)
    assert row["status"] == "pass", row["reason"]
    assert row["tie_flips"] >= 1 and row["first_divergent_step"] is not None
    assert 0 < row["tie_margin"] < 0.3 and "margin" in row["reason"]
    (record,) = RunDir(tmp_path).generations()
    flipped = [p for p in record["prompts"] if p.get("near_tie")]
    assert flipped and flipped[0]["reference_tokens"] != flipped[0]["path_tokens"]
    # The report's Generation section: the row, the drift chart, the tokens side by side.
    from torchparity.report.report import report_html

    page = report_html([row], generations=[record])
    assert "id='generation'" in page and "<svg" in page and "near-tie at step" in page
    from torchparity.report.zoo import generation_matrix

    (line,) = generation_matrix([dict(row, suite="generate-ci")]).to_dict("records")
    assert line["status"] == "pass" and line["tie flips"] == str(row["tie_flips"])


def test_eager_fp32_passes_with_speed_columns(tmp_path):
    row = generate("gen.tiny", "eager", tmp_path, batch=1)
    assert row["status"] == "pass", row["reason"]
    assert row["tokens_agree"] == 1.0 and row["tie_flips"] == 0 and row["batch"] == 1
    assert row["ttft_ms"] > 0 and row["tpot_ms_p99"] >= row["tpot_ms_p50"] > 0
    assert row["tokens_s"] > 0 and row["max_new_tokens"] == 6


def test_paths_without_generation_are_skip_rows_with_a_reason(tmp_path):
    """A backend with no generation path and a case without a declaration: skips that say why."""
    row = generate("gen.tiny", "torchscript", tmp_path)
    assert row["status"] == "skip" and "has no generation path" in row["reason"], row["reason"]
    from torchparity.axes.matrix import Cell
    from torchparity.cell.context import precheck

    cell = Cell("zoo.bert", "model", "zoo", "cpu", "fp32", "eager", "generate")
    __import__("torchparity.suites.zoo")
    assert "declares no generation" in (precheck(cell) or "")


@pytest.mark.slow
def test_compile_generates_the_reference_tokens(tmp_path):
    """torch.compile's path (dynamic shapes over the model's cache): minutes on 2 cores."""
    row = generate("gen.tiny", "compile", tmp_path, batch=1)
    assert row["status"] == "pass", row["reason"]
    assert row["tokens_agree"] == 1.0 and row["backend_frames_compiled"] >= 1
