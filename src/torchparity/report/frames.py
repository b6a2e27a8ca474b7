"""The pandas selections the reports make, with the types they have.

pandas annotates ``frame[key]`` and ``pd.to_numeric`` as whatever they may
return for any key or argument (a Series, a DataFrame, an array, a scalar), so
a type checker cannot follow a report's frames through them. These helpers
take the arguments the reports pass and check, at run time, that the result is
what that argument gives: a boolean mask selects a DataFrame of rows, a list
of names a DataFrame of columns, one name a Series.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd


def as_frame(value: Any) -> pd.DataFrame:
    if not isinstance(value, pd.DataFrame):
        raise TypeError(f"expected a DataFrame, not {type(value).__name__}")
    return value


def as_series(value: Any) -> pd.Series:
    if not isinstance(value, pd.Series):
        raise TypeError(f"expected a Series, not {type(value).__name__}")
    return value


def rows(frame: pd.DataFrame, mask: pd.Series) -> pd.DataFrame:
    """The rows of ``frame`` where the boolean ``mask`` holds."""
    return as_frame(frame[mask])


def columns(frame: pd.DataFrame, names: Iterable[str]) -> pd.DataFrame:
    """The columns of ``names`` that ``frame`` has, in that order."""
    return as_frame(frame[[c for c in names if c in frame.columns]])


def column(frame: pd.DataFrame, name: str) -> pd.Series:
    return as_series(frame[name])


def numeric(frame: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` as numbers: NaN where a value is not one, or on every
    row when ``frame`` has no such column."""
    return as_series(pd.to_numeric(column_or_nan(frame, name), errors="coerce"))


def column_or_nan(frame: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name``, or NaN on every row when ``frame`` has no such column."""
    if name in frame.columns:
        return column(frame, name)
    return pd.Series(float("nan"), index=frame.index)
