"""The console: standard streams that never crash on characters they cannot encode,
and counts written as people write them (``plural``).

A Windows console or pipe often encodes as cp1252; a case name, a reason or an
error message with a character outside it (``≈``, ``→``, CJK) would otherwise
end the run in ``UnicodeEncodeError`` while printing its table. Such characters
become ``?`` instead; the files a run writes are UTF-8 regardless.
"""

from __future__ import annotations

import io
import sys
from typing import Any


def make_robust(stream: Any) -> Any:
    """Make a text stream replace unencodable characters; returns the stream."""
    if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
        try:
            stream.reconfigure(errors="replace")
        except (ValueError, OSError):  # a closed or detached stream: leave it alone
            pass
    return stream


def robust_standard_streams() -> None:
    """Apply ``make_robust`` to stdout and stderr (called once by the CLI)."""
    make_robust(sys.stdout)
    make_robust(sys.stderr)


def plural(count: int, word: str) -> str:
    """``1 cell``, ``2 cells``, ``3 properties``: counts as people write them."""
    if count == 1:
        return f"{count} {word}"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return f"{count} {word[:-1]}ies"
    return f"{count} {word}{'es' if word.endswith(('s', 'x', 'ch', 'sh')) else 's'}"
