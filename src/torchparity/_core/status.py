"""The status vocabulary of a row: the one place its values are spelled."""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    """A cell's verdict. A ``str`` subclass, so rows, JSON and pandas see the plain value."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"
    CRASH = "crash"
    TIMEOUT = "timeout"
    XFAIL = "xfail"

    def __str__(self) -> str:
        return self.value


# Display order of the report's counts.
STATUSES: tuple[str, ...] = tuple(s.value for s in Status)
# Findings: what --strict and the compare gate treat as bad.
BAD_STATUSES: frozenset[str] = frozenset({"fail", "error", "crash", "timeout"})
# Statuses whose rows carry measurements (timing, drift).
MEASURED_STATUSES: frozenset[str] = frozenset({"pass", "fail", "xfail"})


def is_bad(status: object) -> bool:
    return str(status) in BAD_STATUSES
