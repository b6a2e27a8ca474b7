"""Verdicts: drift metrics and tolerance policies, known failures."""
