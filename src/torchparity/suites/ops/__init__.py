"""The op conformance catalog: every op registered once in the ``ops`` suite,
one module per family (see docs/fuzzing.md)."""

from torchparity.suites.ops import binary, indexing, linalg, nn, reductions, resample, unary

__all__ = ["binary", "indexing", "linalg", "nn", "reductions", "resample", "unary"]
