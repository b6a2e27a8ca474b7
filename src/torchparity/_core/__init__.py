"""Contracts every layer may import: statuses, the row, the run directory, the
environment, the cache and its seals, the output store, file and console helpers."""
