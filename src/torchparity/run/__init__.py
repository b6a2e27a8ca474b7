"""A run: workers, the scheduler of cells and rounds, instruction counts, data throughput."""
