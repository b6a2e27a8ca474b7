"""Timing: the timer, measurements and their statistics, rounds, pairing,
calibration and device memory."""
