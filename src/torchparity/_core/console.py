"""The console: standard streams that never crash on characters they cannot encode.

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
