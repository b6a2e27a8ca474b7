"""onnxruntime-node generation (``--mode generate``): the loop in JavaScript, as
a Node service runs it, over the very past-kv-io .onnx file the onnxruntime
path runs (backends/onnx_generation.py, the same cache entry). Node runs
prefill and every decode call itself (backends/js/generate_runner.mjs: one
token per sequence per call, each call's ``present`` fed back as ``past``),
greedy or teacher-forced, and hands back each step's logits: a
:class:`~torchparity.backends.generation.LoopPath`.

Each loop is one ``node`` process (load, loop, exit): its prefill and decode
times are Node's own (performance.now() around ``session.run``), recorded in
``last_times``.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from torchparity.backends import js_build, tensor_io
from torchparity.backends.base import PrepareContext
from torchparity.backends.onnx_generation import generation_artifact, generation_unsupported_dtype

if TYPE_CHECKING:
    from torchparity.backends.generation import Prompts

LOOP_TIMEOUT_S = 600


class NodeLoopPath:
    """A LoopPath: ``node generate_runner.mjs`` over the past-kv-io graph."""

    cache_kind = "js-loop"
    decode_input_len = 1  # the runner feeds one token per sequence per call

    def __init__(self, script: Path, artifact: Path, empty_past: Any, threads: int) -> None:
        self.script = script
        self.artifact = artifact
        self.empty_past = empty_past  # (names, CacheGeometry): the past at prefill
        self.threads = threads
        self.last_times: dict[str, Any] = {}

    def run_loop(
        self, prompts: Prompts, steps: int, forced: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        names, geometry = self.empty_past
        batch = int(prompts.input_ids.shape[0])
        tensors = [prompts.input_ids.to(torch.int64), prompts.attention_mask.to(torch.int64)]
        tensors += geometry.empty_past(batch)
        labels = ["input_ids", "attention_mask", *names]
        if forced is not None:
            tensors.append(forced.to(torch.int64))
            labels.append("forced")
        with tempfile.TemporaryDirectory(prefix="torchparity-node-gen-") as tmp:
            inputs, outputs = Path(tmp) / "inputs.bin", Path(tmp) / "outputs.bin"
            tensor_io.save(inputs, [t.detach().cpu().contiguous() for t in tensors], labels)
            command = ["node", str(self.script), "--artifact", str(self.artifact)]
            command += ["--inputs", str(inputs), "--outputs", str(outputs)]
            command += ["--steps", str(steps), "--threads", str(self.threads)]
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=LOOP_TIMEOUT_S, check=False
            )
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()
                raise RuntimeError(f"the Node generation loop failed: {tail[0] if tail else ''}")
            self.last_times = json.loads(done.stdout.strip().splitlines()[-1])
            got = dict(zip(*tensor_io.load(outputs), strict=True))
        device = prompts.input_ids.device
        return got["prefill_logits"].to(device), got["step_logits"].to(device)


def prepare_node_generation(
    model: torch.nn.Module,
    ctx: PrepareContext,
    threads: int,
    install: js_build.JsInstall,
    checked_onnx: Any,
) -> NodeLoopPath:
    """The onnxruntime-node backend's generation path: the installed runner
    scripts and the onnxruntime path's past-kv-io file."""
    reason = generation_unsupported_dtype(ctx.precision.dtype)
    if reason is not None or ctx.precision.dtype != torch.float32:
        raise NotImplementedError(reason or "the Node generation loop reads fp32 logits only")
    artifact, geometry = generation_artifact(model, ctx, checked_onnx)
    ctx.notes.update(artifact_of="onnxruntime", generation_graph="past-kv-io, the loop in Node")
    past = (geometry.past_names("past_key_values"), geometry)
    # Beside node_runner.mjs in the private copy of the checked files: what runs is what was checked.
    script = js_build.node_runner_script(install).with_name("generate_runner.mjs")
    return NodeLoopPath(script, artifact, past, threads)
