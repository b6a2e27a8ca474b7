"""Models that deployment users actually run, small enough for well under a
second per cell on a laptop CPU. Importing this package registers them in the
``models`` suite (and a few in ``smoke``); ``shapes.py`` the ``shapes`` suite."""

# Registration order is listing order: vision, then sequence, then recsys.
from torchparity.suites.models import vision  # noqa: I001, F401
from torchparity.suites.models import sequence  # noqa: F401
from torchparity.suites.models import recsys  # noqa: F401
from torchparity.suites.models import shapes  # noqa: F401
