"""Checks for tabular inputs (price CSVs, bars) that must never be silently misread, and
standard JSON out. Pure: every function takes values and returns values or raises ``TableError``
naming the first offending line of the file (``first_line`` is the file line of ``values[0]``)."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import pandas as pd


class TableError(ValueError):
    """Bad input data; the message names the first offending line."""


def parse_dates(values: Sequence[Any], first_line: int = 2, column: str = "date",
                lines: Sequence[int] | None = None) -> pd.DatetimeIndex:
    """UTC timestamps of ISO-8601 dates/times (or epoch numbers); the first unparseable one is an error."""
    raw = pd.Series(list(values), dtype=object)
    text = raw.astype(str).str.strip()
    numeric = pd.to_numeric(text, errors="coerce")
    if len(text) and numeric.notna().all():
        magnitude = float(numeric.abs().max())
        unit = "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns"
        return pd.DatetimeIndex(pd.to_datetime(numeric, unit=unit, utc=True))
    parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        i = int(bad[0])
        line = lines[i] if lines is not None else first_line + i
        raise TableError(f"line {line}: unparseable {column} {raw.iloc[i]!r} "
                         "(use YYYY-MM-DD or ISO-8601 date-times)")
    return pd.DatetimeIndex(parsed)


def check_unique(days: Sequence[Any], symbols: Sequence[str] | None = None, first_line: int = 2,
                 lines: Sequence[int] | None = None, shown: Sequence[Any] | None = None) -> None:
    """(symbol, date) pairs — or dates alone — must not repeat."""
    keys = pd.MultiIndex.from_arrays([list(symbols), list(days)]) if symbols is not None else pd.Index(list(days))
    dup = np.flatnonzero(keys.duplicated(keep="first"))
    if len(dup):
        i = int(dup[0])
        first = int(np.flatnonzero(keys == keys[i])[0])
        line = (lines[i] if lines is not None else first_line + i)
        first_no = (lines[first] if lines is not None else first_line + first)
        day = (shown if shown is not None else days)[i]
        what = f"{symbols[i]} on {day}" if symbols is not None else f"{day}"
        raise TableError(f"line {line}: duplicate row for {what} (first at line {first_no}; keep one row per "
                         f"{'symbol and ' if symbols is not None else ''}date)")


def sort_order(days: Sequence[Any]) -> np.ndarray | None:
    """The stable permutation that sorts ``days``, or None when they are already in order."""
    arr = np.asarray(pd.DatetimeIndex(days).asi8 if not isinstance(days, np.ndarray) else days)
    if len(arr) < 2 or bool(np.all(arr[1:] >= arr[:-1])):
        return None
    return np.argsort(arr, kind="stable")


def check_finite(frame: pd.DataFrame, first_line: int = 2, what: str = "price") -> None:
    """Every non-empty cell is a finite number; NaN from an empty cell is allowed (a missing price)."""
    values = frame.to_numpy(dtype=float)
    bad = np.argwhere(np.isinf(values))
    if len(bad):
        r, c = (int(x) for x in bad[0])
        raise TableError(f"line {first_line + r}: non-finite {what} {float(values[r, c])!r} for {frame.columns[c]} "
                         "(give a finite number or leave the cell empty)")


def standard_json(obj: Any, path: str = "") -> tuple[Any, dict[str, str]]:
    """``obj`` with every NaN/Infinity replaced by null, and ``{path: reason}`` for each, so the
    output is standard JSON (``json.dumps(..., allow_nan=False)`` works) and says why a value is missing."""
    reasons: dict[str, str] = {}

    def walk(x: Any, p: str) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            reasons[p or "$"] = "not a number (undefined for this input)" if x != x else \
                f"{'+' if x > 0 else '-'}infinite (division by zero or overflow for this input)"
            return None
        if isinstance(x, dict):
            return {k: walk(v, f"{p}.{k}" if p else str(k)) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v, f"{p}[{i}]") for i, v in enumerate(x)]
        return x

    return walk(obj, path), reasons
