"""Diagnosis of a failing cell: per-layer localization and minimal reproducers."""
