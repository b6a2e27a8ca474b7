"""Fuzzing op parity with hypothesis: strategies and properties."""
