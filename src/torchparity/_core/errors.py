"""How an exception becomes a row's one-line reason, the same on every path."""

from __future__ import annotations

import errno
import os
import re
import shutil
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from torchparity._core.status import Status

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# OS errors that are the machine's, not any component's: blamed on ``environment``.
_MACHINE_ERRNOS = {
    errno.ENOSPC: "the disk is full",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EDQUOT: "the disk quota is exceeded",
}


class MachineFault(RuntimeError):
    """A fault of the machine the run is on (a full or read-only disk, no network, an
    install that cannot be made), said in words. Raised where torchparity meets one;
    a row whose ``error_type`` is this is blamed on ``environment``."""


def machine_fault(exc: BaseException) -> str | None:
    """The machine's fault behind ``exc`` in words ("the disk is full: /path"), or
    None when ``exc`` (or what it chains) is no such OS error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, MachineFault):
            return _message_line(current)
        if isinstance(current, OSError) and current.errno in _MACHINE_ERRNOS:
            where = f": {current.filename}" if current.filename else ""
            return f"{_MACHINE_ERRNOS[current.errno]}{where}"
        current = current.__cause__ or current.__context__
    return None


FULL_BELOW = 1 << 20  # bytes: a write that failed with less free than this met a full disk


def disk_fault(folder: Path) -> str | None:
    """Why ``folder`` takes no write, in words (its file system is read-only or
    full, or it is not writable), or None. Asked after a library's write failed
    without saying why (OpenVINO's "basic_ios::clear: iostream error")."""
    try:
        if getattr(os, "ST_RDONLY", 0) and os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"{_MACHINE_ERRNOS[errno.EROFS]}: {folder}"
        free = shutil.disk_usage(folder).free
    except OSError:
        return None
    if free < FULL_BELOW:
        return f"{_MACHINE_ERRNOS[errno.ENOSPC]}: {folder} ({free} bytes free)"
    if not os.access(folder, os.W_OK):
        return f"{_MACHINE_ERRNOS[errno.EACCES]}: {folder}"
    return None


@contextmanager
def disk_faults(folder: Path) -> Iterator[None]:
    """Around a library's write into ``folder``: an error that hides the OS's
    (no errno) is raised again as a ``MachineFault`` naming the cause, chained
    to the library's, when ``folder`` is then full, read-only or unwritable;
    any other error passes unchanged."""
    try:
        yield
    except Exception as exc:
        fault = None if machine_fault(exc) else disk_fault(folder)
        if fault is None:
            raise
        raise MachineFault(fault) from exc  # the reason quotes the library's line as the cause


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
    """The error columns of a row; a machine's fault leads the reason in words and is
    kept in ``machine_fault`` (blamed on ``environment``)."""
    fields = {
        "status": Status.ERROR.value,
        "reason": f"{stage}: {first_line(exc)}",
        "error_type": type(exc).__name__,
        "error_stage": stage,
        "traceback": traceback.format_exc()[-20000:],
    }
    fault = machine_fault(exc)
    if fault is not None:
        fields["machine_fault"] = fault
        if not isinstance(exc, MachineFault):
            fields["reason"] = f"{stage}: {fault} ({first_line(exc)})"[:400]
    return fields
