"""The zoo's checked-in expectations: every cell of the full suite
(``expectations.json``) and of the ci selection (``expectations-ci.json``)
that is not expected to pass, with its reason and blame (format:
src/torchparity/verdicts/expectations.py)."""

from __future__ import annotations

from pathlib import Path

from torchparity.verdicts import expectations

PATH = Path(__file__).with_name("expectations.json")
CI_PATH = Path(__file__).with_name("expectations-ci.json")


def register() -> None:
    expectations.register_file("zoo", PATH)
    expectations.register_file("zoo-ci", CI_PATH)
