"""The suite's checked-in expectations (``expectations.json``: which cells
are expected not to pass, why, and whom to blame) and its ci selection."""

from __future__ import annotations

import hashlib
from pathlib import Path

from torchparity.verdicts import expectations

PATH = Path(__file__).with_name("expectations.json")  # the full selection
CI_PATH = Path(__file__).with_name("expectations-ci.json")  # the ci selection (capped samples)
SAMPLED_PATH = Path(__file__).with_name("expectations-sampled.json")  # every entry, capped samples
# The ci selection: a fixed fraction of the entries, chosen by a hash of the
# name (stable across runs and machines), sized to run eager, torchscript,
# onnxruntime and compile at fp32 on 2 cores in under 15 minutes.
CI_FRACTION = 0.25


def register() -> None:
    """Each selection is judged against its own file (capped samples may pass
    where every sample fails)."""
    expectations.register_file("opinfo", PATH)
    expectations.register_file("opinfo-ci", CI_PATH)
    expectations.register_file("opinfo-sampled", SAMPLED_PATH)


def in_ci_selection(name: str) -> bool:
    digest = int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:8], 16)
    return digest / 0xFFFFFFFF < CI_FRACTION
