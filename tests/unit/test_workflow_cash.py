"""The workflow's paper broker never borrows: a +10 % gap between sizing and fill on real prices."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from tests.helpers import PRICES_CSV, WORKFLOW_SYMBOLS, write_small_workflow_config
from ticktide.cli import main

START, END = "2016-06-01", "2016-09-30"


@pytest.fixture(scope="module")
def gap_run(tmp_path_factory):
    """Real closes of 6 symbols; every price from the day after the first rebalance is 10 % higher."""
    tmp = tmp_path_factory.mktemp("gap")
    df = pd.read_csv(PRICES_CSV, index_col="date")[WORKFLOW_SYMBOLS]
    dates = list(df.index)
    first = next(d for d in dates if d >= START)
    gap_day = dates[dates.index(first) + 1]
    df.loc[gap_day:] *= 1.10
    prices = tmp / "gap.csv"
    df.to_csv(prices)
    cfg = write_small_workflow_config(tmp)
    out = tmp / "out"
    assert main(["workflow", "run", "--prices", str(prices), "--symbols", ",".join(WORKFLOW_SYMBOLS),
                 "--start", START, "--end", END, "--config", str(cfg), "--out", str(out),
                 "--no-progress", "--no-report"]) == 0
    return json.loads((out / "results.json").read_text()), gap_day


def test_cash_stays_at_or_above_zero_every_day_through_a_10_percent_gap(gap_run):
    r, gap_day = gap_run
    cash = r["daily_cash"]
    assert len(cash) == r["days"] and cash[0]["date"] == r["first_trading_day"]
    assert min(c["cash"] for c in cash) >= 0.0
    gap_fills = [t for t in r["trades"] if t["date"] == gap_day]
    assert gap_fills and all(t["side"] == "buy" for t in gap_fills)
    # every fill of the gap day was scaled down, and says why
    for t in gap_fills:
        assert t["quantity"] < t["requested_quantity"]
        gap = re.search(r"is \+(\d+\.\d+)% from the sizing price", t["reason"])
        assert gap and 7.0 < float(gap.group(1)) < 13.0, t["reason"]  # 10 % on top of the day's move
    # nothing else was scaled without saying so: every scaled fill carries its reason
    for t in r["trades"]:
        if "requested_quantity" in t:
            assert t["quantity"] < t["requested_quantity"] and t["reason"]
    for o in r["scaled_orders"]:
        assert "cash floor" in o["reason"]
