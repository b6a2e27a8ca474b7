"""The suite's checked-in expectations (``expectations.json``: which cells
are expected not to pass, why, and whom to blame) and its ci selection."""

from __future__ import annotations

import hashlib
from pathlib import Path

from harness.engine.cases import KnownFailure
from harness.verdicts import expectations

PATH = Path(__file__).with_name("expectations.json")
# The ci selection: a fixed fraction of the entries, chosen by a hash of the
# name (stable across runs and machines), sized to run eager, torchscript,
# onnxruntime and compile at fp32 on 2 cores in under 15 minutes.
CI_FRACTION = 0.5


def known_failures() -> dict[str, list[KnownFailure]]:
    for suite in ("opinfo", "opinfo-ci"):
        expectations.register_file(suite, PATH)
    return expectations.known_failures(expectations.load(PATH))


def in_ci_selection(name: str) -> bool:
    digest = int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < CI_FRACTION
