"""The house rules a reviewer would otherwise check by eye."""

from __future__ import annotations

import re

from tests.helpers import ROOT

SOURCES = sorted((ROOT / "src" / "torchparity").rglob("*.py"))


def test_every_broad_except_says_why():
    """ruff selects BLE: each deliberate broad catch carries its reason."""
    bare = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in SOURCES
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"noqa: BLE001\s*$", line)
    ]
    assert not bare, f"a broad except without its reason: {bare}"
