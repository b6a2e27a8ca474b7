"""The run engine: cases and their inputs, the axes, matrix expansion, the
per-cell pipeline, workers, timing and the runner that streams rows."""
