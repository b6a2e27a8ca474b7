"""A lowered ExecuTorch program as torchparity reads it: how much the delegate took,
and its forward method loaded with a missing kernel named as such. Shared by the
forward backend (executorch_runtime.py) and the static-cache generation export
(executorch_generation.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any


def _delegation(edge: Any, notes: dict) -> None:
    """Record how much of the lowered edge program XNNPACK took, and which
    operators are left to ExecuTorch's own kernels."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(edge.exported_program().graph_module)
    delegated = info.num_delegated_nodes
    total = delegated + info.num_non_delegated_nodes
    frame = info.get_operator_delegation_dataframe()
    left = frame[frame["occurrences_in_non_delegated_graphs"] > 0]["op_type"]
    notes["delegated_nodes"] = int(delegated)
    notes["delegated_share"] = round(delegated / total, 4) if total else 0.0
    notes["undelegated_ops"] = ",".join(
        sorted(str(op) for op in left if str(op) not in ("Total", "getitem"))
    )


_OPERATOR_MISSING = re.compile(r"error: 0x:?14\b")


def _load_method(path: Path, notes: dict) -> Any:
    """The program's forward method; a missing kernel named as such (the
    runtime says only "error 0x14")."""
    from executorch.runtime import Runtime

    try:
        return Runtime.get().load_program(path).load_method("forward")
    except RuntimeError as exc:
        if not _OPERATOR_MISSING.search(str(exc)):
            raise
        ops = notes.get("undelegated_ops")
        raise NotImplementedError(
            "the ExecuTorch runtime has no kernel for an operator of the program "
            "(error 0x14 OperatorMissing)"
            + (f"; operators outside the delegate: {ops}" if ops else "")
        ) from None
