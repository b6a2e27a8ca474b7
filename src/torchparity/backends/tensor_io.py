"""The tensor file format shared with the native runner (docs/native-runner.md):
a header and raw little-endian bytes, nothing executable, so reading a file
from a run or cache directory never runs code (no pickle).

    file   := "TPTENSOR" (8 bytes) | u32 version (1) | u32 count | entry * count
    entry  := u32 name_len | name (UTF-8) | u8 dtype code | u8 ndim | u16 0
              | i64 shape[ndim] | u64 nbytes | nbytes of C-contiguous data

Integers are little-endian; the dtype codes below never change meaning.
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

MAGIC = b"TPTENSOR"
VERSION = 1

# Part of the format: append new codes, never renumber.
DTYPE_CODES: dict[torch.dtype, int] = {
    torch.float64: 1,
    torch.float32: 2,
    torch.float16: 3,
    torch.bfloat16: 4,
    torch.int64: 5,
    torch.int32: 6,
    torch.int16: 7,
    torch.int8: 8,
    torch.uint8: 9,
    torch.bool: 10,
    torch.complex64: 11,
    torch.complex128: 12,
}
CODE_DTYPES = {code: dtype for dtype, code in DTYPE_CODES.items()}

_HEADER = struct.Struct("<8sII")
_ENTRY = struct.Struct("<BBH")


class TensorFormatError(ValueError):
    """A tensor file that does not follow the format (truncated, foreign, unknown dtype)."""


def _raw_bytes(tensor: torch.Tensor) -> bytes:
    # Byte view through uint8: works for every dtype, bf16 and bool included.
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    if sys.byteorder != "little" and flat.element_size() > 1:
        raise TensorFormatError("the tensor format is little-endian; this host is big-endian")
    return data


def encode(tensors: Sequence[torch.Tensor], names: Sequence[str] | None = None) -> bytes:
    """The file's bytes for ``tensors`` (named ``names``, default empty)."""
    names = list(names) if names is not None else [""] * len(tensors)
    if len(names) != len(tensors):
        raise ValueError(f"{len(tensors)} tensors but {len(names)} names")
    parts = [_HEADER.pack(MAGIC, VERSION, len(tensors))]
    for name, tensor in zip(names, tensors, strict=True):
        if tensor.dtype not in DTYPE_CODES:
            raise TensorFormatError(
                f"{name or 'tensor'}: dtype {tensor.dtype} has no code in the format"
            )
        if tensor.dim() > 255:
            raise TensorFormatError(f"{name or 'tensor'}: more than 255 dimensions")
        raw_name = name.encode("utf-8")
        data = _raw_bytes(tensor)
        parts += [
            struct.pack("<I", len(raw_name)),
            raw_name,
            _ENTRY.pack(DTYPE_CODES[tensor.dtype], tensor.dim(), 0),
            struct.pack(f"<{tensor.dim()}q", *tensor.shape),
            struct.pack("<Q", len(data)),
            data,
        ]
    return b"".join(parts)


def _take(data: memoryview, at: int, size: int) -> tuple[memoryview, int]:
    if at + size > len(data):
        raise TensorFormatError("tensor file is truncated")
    return data[at : at + size], at + size


def _decode_entry(data: memoryview, at: int) -> tuple[str, torch.Tensor, int]:
    raw, at = _take(data, at, 4)
    (name_len,) = struct.unpack("<I", raw)
    raw_name, at = _take(data, at, name_len)
    raw, at = _take(data, at, _ENTRY.size)
    code, ndim, _ = _ENTRY.unpack(raw)
    if code not in CODE_DTYPES:
        raise TensorFormatError(f"unknown dtype code {code}")
    dtype = CODE_DTYPES[code]
    raw, at = _take(data, at, 8 * ndim)
    shape = struct.unpack(f"<{ndim}q", raw)
    raw, at = _take(data, at, 8)
    (nbytes,) = struct.unpack("<Q", raw)
    tensor = torch.empty(shape, dtype=dtype)
    if nbytes != tensor.numel() * tensor.element_size():
        raise TensorFormatError(
            f"entry {bytes(raw_name)!r}: {nbytes} bytes for shape {shape} of {dtype}"
        )
    payload, at = _take(data, at, nbytes)
    if nbytes:
        tensor.reshape(-1).view(torch.uint8).numpy()[:] = payload  # one copy into owned memory
    return bytes(raw_name).decode("utf-8"), tensor, at


def decode(data: bytes) -> tuple[list[str], list[torch.Tensor]]:
    """Names and tensors (CPU, owned) of a file's bytes."""
    view = memoryview(data)
    if len(view) < _HEADER.size:
        raise TensorFormatError("tensor file is truncated")
    magic, version, count = _HEADER.unpack(view[: _HEADER.size])
    if magic != MAGIC:
        raise TensorFormatError("not a torchparity tensor file")
    if version != VERSION:
        raise TensorFormatError(f"tensor file version {version}; this reader knows {VERSION}")
    names, tensors, at = [], [], _HEADER.size
    for _ in range(count):
        name, tensor, at = _decode_entry(view, at)
        names.append(name)
        tensors.append(tensor)
    if at != len(view):
        raise TensorFormatError(f"{len(view) - at} bytes after the last entry")
    return names, tensors


def save(path: Path, tensors: Sequence[torch.Tensor], names: Sequence[str] | None = None) -> None:
    """Write ``tensors`` to ``path`` (a temporary name, then renamed: never half a file)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(encode(tensors, names))
    os.replace(tmp, path)


def load(path: Path) -> tuple[list[str], list[torch.Tensor]]:
    """Names and tensors of the file at ``path``."""
    return decode(Path(path).read_bytes())
