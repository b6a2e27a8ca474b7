"""torchparity: the importable face of the distribution. A thin facade: the
engine is ``harness``; this re-exports its public API (``torchparity.testing``
holds ``assert_parity``)."""

from harness import *  # noqa: F403
from harness import __all__  # noqa: F401
