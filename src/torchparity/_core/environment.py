"""The environment a run executed in (env.json), and a fingerprint of the parts
that make two runs' timings comparable."""

from __future__ import annotations

import ctypes
import datetime as _dt
import hashlib
import json
import os
import platform
import socket
import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import torch


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model(system: str | None = None, run: Callable[..., Any] = subprocess.run) -> str:
    # system/run are parameters so each OS branch can be exercised on any OS.
    system = system or platform.system()
    try:
        if system == "Linux":
            for line in (
                Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
            ):
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
        elif system == "Darwin":
            out = run(
                ["sysctl", "-n", "machdep.cpu.brand_string"],
                capture_output=True,
                text=True,
                timeout=5,
            )
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


class MemoryStatusEx(ctypes.Structure):
    """Win32 MEMORYSTATUSEX (64 bytes), filled by kernel32.GlobalMemoryStatusEx.
    DWORD is c_uint32, not c_ulong (8 bytes on Linux/macOS), so the layout is
    the same, and testable, on every OS."""

    _fields_ = [("dwLength", ctypes.c_uint32), ("dwMemoryLoad", ctypes.c_uint32)] + [
        (n, ctypes.c_ulonglong)
        for n in (
            "ullTotalPhys",
            "ullAvailPhys",
            "ullTotalPageFile",
            "ullAvailPageFile",
            "ullTotalVirtual",
            "ullAvailVirtual",
            "ullAvailExtendedVirtual",
        )
    ]


def _windows_memory_bytes(kernel32: Any = None) -> int | None:
    """Total physical memory from GlobalMemoryStatusEx (``kernel32`` injectable for tests)."""
    if kernel32 is None:
        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    status = MemoryStatusEx()
    status.dwLength = ctypes.sizeof(MemoryStatusEx)
    if kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):
        return int(status.ullTotalPhys)
    return None


def _memory_bytes(system: str | None = None) -> int | None:
    system = system or platform.system()
    try:
        if system != "Windows" and "SC_PHYS_PAGES" in getattr(os, "sysconf_names", {}):
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (OSError, ValueError):
        pass
    if system == "Windows":
        return _windows_memory_bytes()
    return None


def git_sha(where: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=where or Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def short_host() -> str:
    return socket.gethostname().split(".")[0] or "host"


def collect() -> dict[str, Any]:
    """Everything env.json records (DESIGN.md's run-directory contract)."""
    cuda_available = torch.cuda.is_available()
    env: dict[str, Any] = {
        "os": platform.system(),
        "os_release": platform.release(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "torch": torch.__version__,
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "onnxscript": _version("onnxscript"),
        "transformers": _version("transformers"),  # the zoo suite's models
        "torchparity": _version("torchparity"),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpu": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if cuda_available
        else [],
        "mps": bool(torch.backends.mps.is_available()),
        "mps_fallback": os.environ.get("PYTORCH_ENABLE_MPS_FALLBACK", "0") == "1",
        "cuda_tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        # How idle OpenMP threads wait (spin or sleep): under a neighbour that
        # takes a core, spinning barriers make small cells far slower (docs/measurement.md).
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "gomp_spincount": os.environ.get("GOMP_SPINCOUNT"),
        "kmp_blocktime": os.environ.get("KMP_BLOCKTIME"),
        "host": short_host(),
        "git_sha": git_sha(),
        "start_time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    env["fingerprint"] = fingerprint(env)
    return env


# The fields that change what a timing means; host names and times do not.
FINGERPRINT_FIELDS = (  # what two comparable runs share (compare names the ones that differ)
    "os",
    "machine",
    "cpu",
    "cores",
    "python",
    "torch",
    "onnxruntime",
    "cuda",
    "gpu",
    "torch_threads",
    "torch_interop_threads",
)


def fingerprint(env: dict[str, Any]) -> str:
    """Two runs whose fingerprints match ran on comparable machines and software."""
    picked = {k: env.get(k) for k in FINGERPRINT_FIELDS}
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


def row_fields(env: dict[str, Any]) -> dict[str, Any]:
    """The environment fields repeated on every row so merged CSVs stay
    self-describing, and the run's seed when ``env`` carries one."""
    fields = {k: env.get(k) for k in ("os", "torch", "onnxruntime", "host")}
    return {**fields, "seed": env["seed"]} if "seed" in env else fields
