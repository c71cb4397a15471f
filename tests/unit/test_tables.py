"""streaming.tables: inputs never silently misread, outputs always standard JSON."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from streaming.tables import TableError, check_finite, check_unique, parse_dates, sort_order, standard_json


def test_dates_iso_and_epochs_and_the_first_bad_line():
    assert list(parse_dates(["2020-01-02", "2020-01-03T21:00:00Z"]).strftime("%F %H")) == \
        ["2020-01-02 00", "2020-01-03 21"]
    assert parse_dates(["1700000000", "1700000060"])[1] == pd.Timestamp(1700000060, unit="s", tz="UTC")
    assert parse_dates([1_700_000_000_000])[0] == pd.Timestamp(1_700_000_000, unit="s", tz="UTC")  # ms
    for bad in ("2020-13-45", "not-a-date", ""):
        with pytest.raises(TableError, match=f"line 3: unparseable date {bad!r}"):
            parse_dates(["2020-01-02", bad])


def test_duplicates_and_order():
    with pytest.raises(TableError, match="line 4: duplicate row for A on d1 \\(first at line 2"):
        check_unique(["d1", "d1", "d1"], ["A", "B", "A"])
    check_unique(["d1", "d1"], ["A", "B"])  # two symbols on one date are fine
    with pytest.raises(TableError, match="line 3: duplicate row for d1"):
        check_unique(["d1", "d1"])
    days = parse_dates(["2020-01-03", "2020-01-02", "2020-01-02"])
    assert list(sort_order(days)) == [1, 2, 0]  # stable
    assert sort_order(parse_dates(["2020-01-02", "2020-01-03"])) is None


def test_non_finite_prices_name_the_line_and_empty_cells_are_missing():
    check_finite(pd.DataFrame({"A": [1.0, math.nan]}))
    with pytest.raises(TableError, match="line 3: non-finite price inf for B"):
        check_finite(pd.DataFrame({"A": [1.0, 2.0], "B": [1.0, math.inf]}))


def test_standard_json_nulls_with_reasons():
    out, reasons = standard_json({"pnl": math.inf, "cash": math.nan, "w": [1.0, -math.inf], "ok": 2})
    assert out == {"pnl": None, "cash": None, "w": [1.0, None], "ok": 2}
    assert set(reasons) == {"pnl", "cash", "w[1]"} and "infinite" in reasons["pnl"]
    json.dumps(out, allow_nan=False)
