"""The deployment paths of ``--mode generate`` (onnxruntime, openvino, executorch,
onnxruntime-node), each prepared through its backend's ``prepare_generation``
and run greedy over left-padded prompts against eager Hugging Face with its
DynamicCache: every step's logits within fp32 tolerance, one token per
sequence per decode call, the same tokens."""

from __future__ import annotations

import importlib.util

import pytest
import torch

STEPS = 8


def _needs(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


def _model(name: str) -> torch.nn.Module:
    """A zoo decoder with a decisive, untied output head (flat logits would
    make greedy decoding a walk over near-ties)."""
    _needs("transformers")
    from torchparity.suites.zoo import text

    torch.manual_seed(0)
    model = {"gpt2": text.GPT2, "llama": text.LLAMA, "qwen2": text.QWEN2}[name].build()
    head = model.get_output_embeddings()
    fresh = torch.nn.Linear(head.in_features, head.out_features, bias=False)
    with torch.no_grad():
        fresh.weight.copy_(torch.randn_like(fresh.weight))
    model.set_output_embeddings(fresh)
    model.config.tie_word_embeddings = False
    return model.eval()


def _prompts(batch: int = 2):
    """Left-padded prompts of lengths 5 and 3 (batch 2), or the first alone."""
    from torchparity.backends.generation import Prompts

    ids = torch.tensor([[11, 12, 13, 14, 15], [0, 0, 21, 22, 23]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1]])
    return Prompts(ids, mask).select(slice(0, batch))


def _eager(model: torch.nn.Module, prompts, steps: int) -> list[torch.Tensor]:
    """Eager's path (the model's own DynamicCache), greedy: the logits choosing each new token."""
    from torchparity.backends.hf_cache_path import HFCachePath

    return _Counting(HFCachePath(model)).run(prompts, steps)


class _Counting:
    """Records each decode call's input length: exactly one token per sequence."""

    def __init__(self, path):
        self.path = path
        self.decode_lengths: list[tuple[int, ...]] = []

    def run(self, prompts, steps: int) -> list[torch.Tensor]:
        logits, state = self.path.prefill(prompts)
        assert logits.shape[:2] == prompts.input_ids.shape
        out = [logits[:, -1]]
        for _ in range(steps):
            tokens = out[-1].argmax(-1)
            self.decode_lengths.append(tuple(tokens.shape))
            step, state = self.path.decode(tokens, state)
            out.append(step)
        return out


def _ctx(backend: str, cache_dir, precision: str = "fp32"):
    from torchparity.axes.devices import get_device
    from torchparity.axes.matrix import Cell
    from torchparity.axes.precision import PRECISIONS
    from torchparity.backends import PrepareContext

    cell = Cell("zoo.test", "model", "test", "cpu", precision, backend)
    return PrepareContext(cell, get_device("cpu"), PRECISIONS[precision], cache_dir=cache_dir)


def _check(
    backend: str, name: str, cache_dir, batch: int = 2, steps: int = STEPS, **options: str
) -> dict:
    from torchparity.backends import get_backend

    model = _model(name)
    prompts = _prompts(batch)
    expected = _eager(model, prompts, steps)
    ctx = _ctx(backend, cache_dir)
    ctx.options.update(options)
    max_len = prompts.input_ids.shape[1] + steps
    with torch.no_grad():
        path = get_backend(backend).prepare_generation(model, prompts, max_len, ctx)
        counting = _Counting(path)
        got = counting.run(prompts, steps)
    assert counting.decode_lengths == [(batch,)] * steps
    assert getattr(path, "decode_input_len", 1) == 1
    for step, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert torch.allclose(a.float(), b, atol=1e-4, rtol=1e-4), (step, (a - b).abs().max())
        assert torch.equal(a.argmax(-1), b.argmax(-1)), step
    return ctx.notes


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("generation-artifacts")


@pytest.mark.slow  # the CLI test below runs this path end to end by default
def test_onnxruntime_generates_gpt2_over_past_key_values(cache_dir):
    _needs("onnxruntime")
    notes = _check("onnxruntime", "gpt2", cache_dir)
    assert notes["cache"] == "miss"
    assert _check("onnxruntime", "gpt2", cache_dir, batch=1)["cache"] == "hit"


@pytest.mark.slow
def test_onnxruntime_generates_llama_over_past_key_values(cache_dir):
    _needs("onnxruntime")
    _check("onnxruntime", "llama", cache_dir)


@pytest.mark.slow  # ~35 s of CPU: the export and conversion
def test_openvino_generates_llama_from_its_state(cache_dir):
    _needs("openvino")
    notes = _check("openvino", "llama", cache_dir)
    assert notes["effective_precision"] == "f32"
    assert notes["kv_cache_precision"] == "f32"


@pytest.mark.slow
def test_openvino_default_u8_kv_cache_is_what_moves_the_decode_logits(cache_dir):
    """OpenVINO's CPU plugin quantizes the KV cache to u8 by default: prefill
    still matches, the decode steps do not (why the fp32 cell asks for f32)."""
    _needs("openvino")
    with pytest.raises(AssertionError, match=r"^\(1, "):
        _check("openvino", "llama", cache_dir, kv_cache_precision="u8")


@pytest.mark.slow  # ~60 s of CPU: the export and the XNNPACK lowering
def test_executorch_generates_from_a_static_cache_and_refuses_left_padding(cache_dir):
    _needs("executorch")
    notes = _check("executorch", "gpt2", cache_dir, batch=1)
    assert notes["delegated_nodes"] > 0
    with pytest.raises(NotImplementedError, match="left-padded batch cannot be served"):
        _check("executorch", "gpt2", cache_dir, batch=2)


def _loop_check(backend: str, name: str, cache_dir, steps: int = STEPS) -> dict:
    """A LoopPath, greedy then teacher-forced on eager's tokens, against eager."""
    from torchparity.backends import get_backend

    model = _model(name)
    prompts = _prompts()
    expected = torch.stack(_eager(model, prompts, steps))
    ctx = _ctx(backend, cache_dir)
    with torch.no_grad():
        path = get_backend(backend).prepare_generation(model, prompts, 0, ctx)
        prefill, greedy = path.run_loop(prompts, steps, None)
        tokens = expected[:-1].argmax(-1).T.contiguous()  # eager's, fed at each call
        _, forced = path.run_loop(prompts, steps, tokens)
    assert prefill.shape[:2] == prompts.input_ids.shape
    assert len(path.last_times["decode_ms"]) == steps  # one call per new token
    for got in (greedy, forced):
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4), (got - expected).abs().max()
    return ctx.notes


def test_onnxruntime_node_runs_the_generation_loop_in_javascript(cache_dir):
    _needs("onnxruntime")
    from torchparity.backends import js_build

    if js_build.tools_missing():
        pytest.skip(js_build.tools_missing())
    notes = _loop_check("onnxruntime-node", "gpt2", cache_dir)
    assert notes["artifact_of"] == "onnxruntime"


# -- through the CLI: torchparity run --mode generate --------------------------------


def _generate_rows(tmp_path, backends: str, batches: str = "1") -> dict[tuple[str, int], dict]:
    """``torchparity run --mode generate`` on zoo.gpt2 (4 new tokens): rows by (backend, batch)."""
    import csv

    from torchparity.cli import main

    out = tmp_path / "run"
    argv = ["run", "--suite", "zoo", "--case", "zoo.gpt2", "--mode", "generate"]
    argv += ["--backend", backends, "--precision", "fp32", "--device", "cpu"]
    argv += ["--batch", batches, "--max-new-tokens", "4", "--no-isolate"]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--out", str(out)]
    main(argv)
    with open(out / "results.csv", encoding="utf-8") as f:
        return {
            (r["backend"], int(float(r["batch"] or r["sweep_batch"]))): r for r in csv.DictReader(f)
        }


def _passes(row: dict, cache_kind: str) -> None:
    assert row["status"] == "pass", row["reason"]
    assert float(row["tokens_agree"]) == 1.0 and row["cache_kind"] == cache_kind
    assert int(float(row["decode_input_len"])) == 1
    assert float(row["ttft_ms"]) > 0


def test_cli_generate_onnxruntime_and_node(tmp_path):
    _needs("onnxruntime")
    from torchparity.backends import js_build

    backends = "onnxruntime" if js_build.tools_missing() else "onnxruntime,onnxruntime-node"
    rows = _generate_rows(tmp_path, backends)
    _passes(rows[("onnxruntime", 1)], "past-kv-io")
    if "node" in backends:
        node = rows[("onnxruntime-node", 1)]
        _passes(node, "js-loop")
        assert float(node["tpot_ms_p50"]) > 0  # Node's own per-call times
        assert node["backend_cache"] == "hit"  # the onnxruntime path's very file


@pytest.mark.slow
def test_cli_generate_openvino(tmp_path):
    _needs("openvino")
    row = _generate_rows(tmp_path, "openvino")[("openvino", 1)]
    _passes(row, "stateful")
    assert row["backend_kv_cache_precision"] == "f32"


@pytest.mark.slow
def test_cli_generate_executorch_batch_1_and_a_padded_batch_skip(tmp_path):
    _needs("executorch")
    rows = _generate_rows(tmp_path, "executorch", "1,2")
    _passes(rows[("executorch", 1)], "static-cache")
    padded = rows[("executorch", 2)]
    assert padded["status"] == "skip" and "left-padded batch" in padded["reason"]


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "executorch", "onnxruntime-node"])
def test_encoder_decoders_are_skip_rows_on_the_deployment_paths(backend):
    """t5's generation has no past-kv-io or static-cache form here yet: a skip
    with that reason before any cell runs, never an error."""
    __import__("torchparity.suites.zoo")
    from torchparity.axes.matrix import Cell
    from torchparity.cell.context import precheck

    reason = precheck(Cell("zoo.t5", "model", "zoo", "cpu", "fp32", backend, "generate"))
    assert reason, backend
    if "not installed" not in reason:
        assert "encoder-decoder" in reason, reason


def test_export_generates_gpt2_over_past_key_values(cache_dir):
    """torch.export's program of the past-kv-io form, prefill and one-token decode;
    the second prepare loads the cached, sealed .pt2."""
    notes = _check("export", "gpt2", cache_dir, steps=4)
    assert notes["cache"] == "miss"
    assert _check("export", "gpt2", cache_dir, batch=1, steps=4)["cache"] == "hit"


@pytest.mark.slow  # AOTInductor compiles C++ (minutes on 2 cores)
def test_aoti_generates_gpt2_over_past_key_values(cache_dir):
    """The past-kv-io program compiled with AOTInductor; the second prepare
    loads the cached package instead of compiling again."""
    notes = _check("aoti", "gpt2", cache_dir, steps=4)
    assert notes["cache"] == "miss"
    assert _check("aoti", "gpt2", cache_dir, batch=1, steps=4)["cache"] == "hit"
