"""How an exception becomes a row's one-line reason, the same on every path."""

from __future__ import annotations

import re
import traceback
from typing import Any

from torchparity._core.status import Status

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _message_line(exc: BaseException) -> str:
    for line in _ANSI.sub("", str(exc)).splitlines():
        if line.strip():
            return line.strip()
    return ""


def first_line(exc: BaseException) -> str:
    """The first meaningful line of ``exc`` and of its root cause. A wrapper
    whose line only introduces details (ends with ":", like the ONNX exporter's
    "... step 1/3 ... Next steps:" or dynamo's "backend='inductor' raised:")
    gives way to the root cause it chains as ``__cause__``."""
    root, seen = exc, {id(exc)}
    while root.__cause__ is not None and id(root.__cause__) not in seen:
        root = root.__cause__
        seen.add(id(root))
    outer = f"{type(exc).__name__}: {_message_line(exc)}".rstrip(": ")
    if root is exc:
        return outer[:400]
    cause = f"{type(root).__name__}: {_message_line(root)}".rstrip(": ")
    if _message_line(exc).endswith(":") or not _message_line(exc):
        return f"{cause} (raised as {type(exc).__name__})"[:400]
    return f"{outer[:240]} (cause: {cause})"[:400]


def error_fields(exc: BaseException, stage: str) -> dict[str, Any]:
    return {
        "status": Status.ERROR.value,
        "reason": f"{stage}: {first_line(exc)}",
        "error_type": type(exc).__name__,
        "error_stage": stage,
        "traceback": traceback.format_exc()[-20000:],
    }
