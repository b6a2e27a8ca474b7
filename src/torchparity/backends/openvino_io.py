"""OpenVINO's IR and tensors as torchparity keeps them: the precision hints, the
IR pair packed as one cache entry, a failed conversion's one line, tensors to and
from OpenVINO (bf16 through its bits). Shared by the forward backend
(openvino_runtime.py) and the stateful generation model (openvino_generation.py)."""

from __future__ import annotations

import re
import struct
from typing import Any

import numpy as np
import torch

HINTS = ("f32", "bf16", "f16")
# The hint each cell precision asks for (fp64 runs as f32: the plugin has no f64 kernels).
DEFAULT_HINT = {
    torch.float64: "f32",
    torch.float32: "f32",
    torch.float16: "f16",
    torch.bfloat16: "bf16",
}
# OpenVINO's element type names -> torchparity's precision names.
PRECISION_NAMES = {"f32": "fp32", "f16": "fp16", "bf16": "bf16"}


def _pack(xml: bytes, weights: bytes) -> bytes:
    """The IR pair as one cache entry (sealed as one): two lengths, then both parts."""
    return struct.pack("<QQ", len(xml), len(weights)) + xml + weights


def _unpack(data: bytes) -> tuple[bytes, bytes]:
    xml_len, bin_len = struct.unpack("<QQ", data[:16])
    if 16 + xml_len + bin_len != len(data):
        raise ValueError("the OpenVINO cache entry is torn")
    return data[16 : 16 + xml_len], data[16 + xml_len :]


_FAILED_OPS = re.compile(r"Conversion is failed for: (.+)")


def conversion_failure(message: str) -> str | None:
    """One line for a failed conversion: the operations OpenVINO names in its
    summary and the last line of its detail (the first line of its message says
    only where in OpenVINO's sources the check failed); None: not that report."""
    ops = _FAILED_OPS.search(message)
    if ops is None:
        return None
    details = message[: ops.start()].split("Summary:")[0].splitlines()
    detail = next((x.strip() for x in reversed(details) if x.strip()), "")
    line = f"OpenVINO's PyTorch frontend could not convert {ops.group(1).strip()}"
    return f"{line}: {detail}" if detail else line


def _to_host(x: torch.Tensor) -> Any:
    """A CPU tensor as OpenVINO takes it; bf16 as an ov.Tensor of its bits."""
    import openvino as ov

    x = x.detach().cpu().contiguous()
    if x.dtype == torch.bfloat16:
        bits = x.view(torch.int16).numpy()
        return ov.Tensor(bits, ov.Shape(list(x.shape)), ov.Type.bf16)
    return x.numpy()


def _to_torch(value: Any) -> torch.Tensor:
    """An output ov.Tensor as a torch tensor (bf16 through its bits)."""
    import openvino as ov

    if value.element_type == ov.Type.bf16:
        bits = np.frombuffer(bytes(value.data.view(np.uint8)), dtype=np.int16)
        return torch.from_numpy(bits.copy()).view(torch.bfloat16).reshape(tuple(value.shape))
    return torch.from_numpy(np.array(value.data, copy=True))
