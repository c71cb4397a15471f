"""Preprocessing rules (the tick validator's TOML format on whole bar frames) and quality."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import numpy as np
import pandas as pd
import pytest

from producers.history import HistoryConfig, load_history
from producers.history.base import Pacer, bars_frame
from producers.history.preprocess import BarRules, quality
from producers.validation import RuleError
from tests.history_server import HistoryServer, stock_closes


def frame(days, close, **kw):
    n = len(days)
    cols = {"open": kw.get("open", close), "high": kw.get("high", close), "low": kw.get("low", close),
            "close": close, "adj_close": kw.get("adj_close", close), "volume": kw.get("volume", [100.0] * n)}
    return bars_frame(pd.to_datetime(days), **cols)


DAYS = ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"]


def test_null_close_is_interpolated_linearly_and_flagged_info():
    p = BarRules().apply("X", frame(DAYS, [10.0, np.nan, np.nan, 16.0, 18.0], adj_close=[10.0, np.nan, np.nan, 16.0, 18.0]))
    assert p.bars["close"].tolist() == [10.0, 12.0, 14.0, 16.0, 18.0]
    assert p.bars["adj_close"].tolist() == [10.0, 12.0, 14.0, 16.0, 18.0]
    assert p.filled == 4 and p.failing == 0 and p.rejected == 0
    assert {(f["date"], f["rule"], f["severity"]) for f in p.flags if f["rule"] == "close_missing"} == {
        ("2024-01-03", "close_missing", "info"), ("2024-01-04", "close_missing", "info")}


def test_a_leading_null_close_cannot_be_interpolated_and_is_rejected():
    p = BarRules().apply("X", frame(DAYS, [np.nan, 11.0, 12.0, 13.0, 14.0]))
    assert p.rows == 4 and p.rejected == 1
    assert any(f["severity"] == "critical" and f["date"] == "2024-01-02" for f in p.flags)


def test_close_and_volume_not_positive_are_warnings_counted_against_accuracy():
    p = BarRules().apply("X", frame(DAYS, [10.0, 0.0, 12.0, 13.0, 14.0], volume=[1.0, 1.0, 0.0, 1.0, 1.0]))
    assert p.rows == 5 and p.failing == 2
    rules = {(f["date"], f["rule"]) for f in p.flags}
    assert ("2024-01-03", "close_not_positive") in rules and ("2024-01-04", "volume_not_positive") in rules


def test_high_low_consistency():
    p = BarRules().apply("X", frame(DAYS[:3], [10.0, 11.0, 12.0], high=[10.0, 10.5, 13.0], low=[9.0, 10.0, 14.0]))
    rules = {(f["date"], f["rule"]) for f in p.flags}
    assert rules == {("2024-01-03", "high_below_open_or_close"), ("2024-01-04", "high_below_low")}


def test_duplicates_and_unsorted_rows():
    days = ["2024-01-04", "2024-01-02", "2024-01-03", "2024-01-03", "2024-01-05"]
    p = BarRules().apply("X", frame(days, [12.0, 10.0, 11.0, 11.5, 13.0]))
    assert [d.date().isoformat() for d in p.bars.index] == ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    assert p.bars.loc["2024-01-03", "close"] == 11.5  # the last answer for a duplicated date wins
    assert p.duplicates == 1 and p.out_of_order == 1 and p.received == 5


def test_rules_file_errors_name_the_rule():
    with pytest.raises(RuleError, match="rule 'bad'.*unknown field 'price'"):
        BarRules({"rules": [{"name": "bad", "conditions": [{"field": "price", "operator": "is_null"}],
                             "actions": [{"type": "flag"}]}]})
    with pytest.raises(RuleError, match="stale_for"):
        BarRules({"rules": [{"name": "s", "conditions": [{"field": "close", "operator": "stale_for", "value": 1}],
                             "actions": [{"type": "flag"}]}]})


def test_a_custom_reject_rule_and_jump_flag():
    rules = BarRules({"rules": [
        {"name": "tiny", "conditions": [{"field": "close", "operator": "less_than", "value": 1}],
         "actions": [{"type": "reject"}]},
        {"name": "jump", "conditions": [{"field": "close", "operator": "max_jump_pct", "value": 20}],
         "actions": [{"type": "flag", "severity": "warning"}]}]})
    p = rules.apply("X", frame(DAYS, [10.0, 0.5, 10.5, 20.0, 20.5]))
    assert p.rows == 4 and p.rejected == 1
    assert [f["date"] for f in p.flags if f["rule"] == "jump"] == ["2024-01-05"]


def test_quality_against_the_union_calendar():
    rules = BarRules()
    full = rules.apply("A", frame(DAYS, [1.0, 2.0, 3.0, 4.0, 5.0]))
    gappy = rules.apply("B", frame(DAYS[:3], [1.0, 2.0, 0.0]))
    q = quality({"A": full, "B": gappy}, dt.date(2024, 1, 1), dt.date(2024, 1, 31), rules.thresholds)
    assert q["A"]["completeness"] == 1.0 and q["A"]["accuracy"] == 1.0 and q["A"]["breaches"] == []
    assert q["B"]["completeness"] == 0.6 and q["B"]["accuracy"] == pytest.approx(2 / 3)
    assert q["B"]["breaches"] == ["completeness", "accuracy"] and q["B"]["expected_rows"] == 5


def test_a_symbol_below_a_threshold_is_dropped_or_kept_by_config(tmp_path):
    closes = stock_closes(["AAPL", "GE"], "2017-01-01", "2017-06-30").rename(columns={"GE": "MSFT"})
    with HistoryServer() as srv:
        srv.serve("yahoo", "AAPL", closes["AAPL"])
        srv.serve("yahoo", "MSFT", closes["MSFT"].iloc[::2].iloc[:58])  # every other day: 50% complete
        base = dict(yahoo_url=srv.url, stooq_url=srv.url, cache_dir=str(tmp_path), retries=0, min_coverage=0.4)
        kept = load_history(["AAPL", "MSFT"], dt.date(2017, 1, 1), dt.date(2017, 6, 30), config=HistoryConfig(**base))
        assert set(kept.bars) == {"AAPL", "MSFT"} and kept.quality["MSFT"]["breaches"] == ["completeness"]
        dropped = load_history(["AAPL", "MSFT"], dt.date(2017, 1, 1), dt.date(2017, 6, 30),
                               config=HistoryConfig.from_mapping({**base, "quality": {"on_breach": "drop"}}))
        assert set(dropped.bars) == {"AAPL"} and "completeness" in dropped.dropped["MSFT"]


def test_pacer_spaces_calls_to_the_rate_limit():
    async def go():
        pacer = Pacer(per_minute=600)  # one call every 0.1 s
        stamps = []
        for _ in range(3):
            await pacer.wait()
            stamps.append(time.monotonic())
        return stamps
    s = asyncio.run(go())
    assert s[2] - s[0] >= 0.19  # two intervals (a little timer jitter on each)
