"""``assert_parity`` for users' own tests (the logic lives in harness/testing.py)."""

from harness.testing import (
    CheckContext,
    ParityError,
    ParityResult,
    assert_parity,
    drift_table,
)

__all__ = ["CheckContext", "ParityError", "ParityResult", "assert_parity", "drift_table"]
