"""Platform-independent deterministic inputs and weights.

Every value comes from the raw 64-bit stream of numpy's PCG64, seeded from a
hash of the case name and the seed, and is turned into numbers with plain
IEEE-754 arithmetic only (integer-to-float conversion, add, multiply). No libm
call (log, cos, exp) is involved, so Linux, macOS and Windows produce the very
same bits, whatever numpy's distribution code or the C library does.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

_TWO_POW_MINUS_53 = 2.0**-53


def seed_from(*parts: object) -> int:
    """A 128-bit seed from any printable parts (case name, seed, parameter name)."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:16], "little")


class InputGen:
    """A deterministic stream of tensors: uniform, approximately normal and integers.

    Floats are returned as float64 tensors and integers as int64; the harness
    casts floats to the cell's precision.
    """

    def __init__(self, *key: object) -> None:
        self._bits = np.random.PCG64(seed_from(*key))

    def _raw(self, n: int) -> np.ndarray:
        return self._bits.random_raw(n).astype(np.uint64)

    def _unit(self, n: int) -> np.ndarray:
        # 53 high bits -> [0, 1), exactly representable.
        return (self._raw(n) >> np.uint64(11)).astype(np.float64) * _TWO_POW_MINUS_53

    def uniform(self, *shape: int, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
        n = math.prod(shape)
        values = low + (high - low) * self._unit(n)
        return torch.from_numpy(values.reshape(shape))

    def normal(self, *shape: int, std: float = 1.0) -> torch.Tensor:
        """Irwin-Hall approximation of N(0, std^2): the sum of 4 uniforms, centred, scaled."""
        n = math.prod(shape)
        total = self._unit(n) + self._unit(n) + self._unit(n) + self._unit(n)
        values = (total - 2.0) * (std * math.sqrt(3.0))
        return torch.from_numpy(values.reshape(shape))

    def integers(self, low: int, high: int, *shape: int) -> torch.Tensor:
        """Integers in [low, high), e.g. token ids."""
        n = math.prod(shape)
        span = np.uint64(high - low)
        values = (self._raw(n) % span).astype(np.int64) + np.int64(low)
        return torch.from_numpy(values.reshape(shape))


def tensor_digest(tensors: list[torch.Tensor]) -> str:
    """A stable hash of tensors' dtype, shape and bytes (little-endian, contiguous)."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
        if t.dtype == torch.bfloat16:
            arr = t.view(torch.int16).numpy()
        else:
            arr = t.numpy()
        h.update(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes())
    return h.hexdigest()[:16]


def cast_inputs(inputs: tuple, dtype: torch.dtype, device: torch.device) -> tuple:
    """Move inputs to ``device``; float tensors become ``dtype``, integers stay integers."""

    def cast(x: object) -> object:
        if isinstance(x, torch.Tensor):
            if x.is_floating_point():
                return x.to(device=device, dtype=dtype)
            return x.to(device=device)
        return x

    return tuple(cast(x) for x in inputs)


def init_weights(module: torch.nn.Module, *key: object) -> torch.nn.Module:
    """Overwrite a module's float parameters and BatchNorm statistics with
    deterministic values, so weights are the same bits on every platform.

    Constant initialisations of vectors (all-ones norm weights, all-zero
    biases, a layer-scale) are kept: they are what the architecture means.
    An all-zero weight matrix (2 or more dimensions, e.g. a zero-initialised
    classifier head) is re-drawn: kept, its layer's output would be constant
    and any backend would match it. Every other parameter gets U(-b, b) with
    b = 1/sqrt(fan_in), PyTorch's default.
    """
    with torch.no_grad():
        for name, p in module.named_parameters():
            if not p.is_floating_point() or p.numel() == 0:
                continue
            flat = p.detach().reshape(-1)
            zero_matrix = p.dim() >= 2 and not bool(flat.any())
            if bool((flat == flat[0]).all()) and not zero_matrix:
                continue
            fan_in = p.shape[1] * math.prod(p.shape[2:]) if p.dim() >= 2 else p.shape[0]
            bound = 1.0 / math.sqrt(max(fan_in, 1))
            values = InputGen(*key, name).uniform(*p.shape, low=-bound, high=bound)
            p.copy_(values.to(p.dtype))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(InputGen(*key, name).uniform(*b.shape, low=-0.1, high=0.1).to(b.dtype))
            elif name.endswith("running_var"):
                b.copy_(InputGen(*key, name).uniform(*b.shape, low=0.5, high=1.5).to(b.dtype))
    return module
