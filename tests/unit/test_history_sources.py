"""The history clients against a local server replaying real answers (tests/history_server.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pandas as pd
import pytest

from producers.history import HistoryConfig, HistoryError, load_history
from producers.history.base import Http, HttpSettings, SourceError
from producers.history.binance import BinanceKlinesSource
from producers.history.chain import HistoryFetcher, looks_like_crypto
from producers.history.yahoo import YahooSource
from tests.history_server import HistoryServer, fixture, klines, stock_closes

D = dt.date


def cfg(srv: HistoryServer, tmp_path, **kw) -> HistoryConfig:
    base = dict(yahoo_url=srv.url, alphavantage_url=srv.url, stooq_url=srv.url, binance_rest_url=srv.url,
                retries=1, backoff_s=0.01, cache_dir=str(tmp_path / "cache"), alphavantage_calls_per_minute=0)
    base.update(kw)
    return HistoryConfig(**base)


def fetch(config: HistoryConfig, symbols, start, end, interval="1d", sources=None):
    async def go():
        async with HistoryFetcher(config, sources=sources) as f:
            return await f.fetch(symbols, start, end, interval)
    return asyncio.run(go())


@pytest.fixture
def srv():
    with HistoryServer() as s:
        yield s


# -- each source's happy path --------------------------------------------------------

def test_yahoo_chart_fixture_parses_every_field(srv, tmp_path):
    srv.script("yahoo", "GS", [(200, fixture("yahoo_chart_GS_2023-10.json"))])
    r = fetch(cfg(srv, tmp_path), ["GS"], D(2023, 10, 2), D(2023, 10, 9))["GS"]
    assert r.source == "yahoo" and r.failures == []
    b = r.bars
    assert [d.date().isoformat() for d in b.index] == ["2023-10-02", "2023-10-03", "2023-10-04", "2023-10-05",
                                                      "2023-10-06", "2023-10-09"]
    first = b.iloc[0]
    assert (first.open, first.high, first.low, first.close, first.adj_close, first.volume) == pytest.approx(
        (322.0299987792969, 323.5799865722656, 317.1000061035156, 318.5, 318.5, 1303800))
    q = srv.log[0][1]
    assert q["interval"] == "1d" and q["events"] == "div,splits" and int(q["period2"]) > int(q["period1"])
    assert len(srv.user_agents) == 1 and next(iter(srv.user_agents)).startswith("ticktide-history/")


def test_yahoo_nulls_are_kept_as_missing(srv, tmp_path):
    doc = json.loads(fixture("yahoo_chart_GS_2023-10.json"))
    doc["chart"]["result"][0]["indicators"]["quote"][0]["close"][2] = None
    srv.script("yahoo", "GS", [(200, json.dumps(doc))])

    async def go():
        async with Http() as http:
            return await YahooSource(http, srv.url).fetch("GS", D(2023, 10, 2), D(2023, 10, 9))
    bars = asyncio.run(go())
    assert len(bars) == 6 and pd.isna(bars["close"].iloc[2]) and bars["open"].notna().all()


def test_alphavantage_daily_adjusted_fixture(srv, tmp_path, monkeypatch):
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "demo-key")
    srv.script("alphavantage", "SHOP.TRT", [(200, fixture("alphavantage_daily_adjusted_SHOP.TRT.json"))])
    r = fetch(cfg(srv, tmp_path), ["SHOP.TRT"], D(2023, 6, 12), D(2023, 6, 22), sources=["alphavantage"])["SHOP.TRT"]
    assert r.source == "alphavantage"
    assert len(r.bars) == 9 and r.bars.index[0].date() == D(2023, 6, 12)
    assert r.bars.loc["2023-06-22", "adj_close"] == 83.47 and r.bars.loc["2023-06-19", "volume"] == 269500
    q = srv.log[0][1]
    assert q["function"] == "TIME_SERIES_DAILY_ADJUSTED" and q["apikey"] == "demo-key"


def test_stooq_csv(srv, tmp_path):
    closes = stock_closes(["AAPL"], "2017-01-01", "2017-03-31")["AAPL"]
    srv.serve("stooq", "AAPL", closes)
    r = fetch(cfg(srv, tmp_path), ["AAPL"], D(2017, 1, 1), D(2017, 3, 31), sources=["stooq"])["AAPL"]
    assert r.source == "stooq" and len(r.bars) == len(closes)
    assert r.bars["close"].to_numpy() == pytest.approx(closes.to_numpy())
    assert r.bars["adj_close"].isna().all()  # Stooq gives no adjusted close
    assert srv.log[0][1]["s"] == "aapl.us"


def test_binance_klines_recording(srv, tmp_path):
    srv.serve_klines("BTCUSDT", json.loads(fixture("binance_klines_BTCUSDT_1d.json")))
    start = pd.Timestamp(1780444800000, unit="ms").date()
    r = fetch(cfg(srv, tmp_path), ["BTCUSDT"], start, start + dt.timedelta(days=12))["BTCUSDT"]
    assert r.source == "binance" and len(r.bars) == 13
    assert r.bars["close"].iloc[0] == 64463.6 and r.bars["volume"].iloc[-1] == 233.36842


def test_binance_paging_over_three_pages_equals_one_long_answer(tmp_path):
    closes = stock_closes(["AAPL"], "2000-01-01", "2010-12-31")["AAPL"].dropna().iloc[:2500]
    closes.index = pd.date_range("2015-01-01", periods=len(closes), freq="D")  # crypto trades every day
    rows = klines(closes)
    start, end = closes.index[0].date(), closes.index[-1].date()
    results = {}
    for page in (1000, 5000):
        with HistoryServer(binance_max_limit=page) as srv:
            srv.serve_klines("ETHUSDT", rows)

            async def go():
                async with Http(HttpSettings(retries=0)) as http:
                    return await BinanceKlinesSource(http, srv.url, page_size=page).fetch("ETHUSDT", start, end)
            results[page] = asyncio.run(go())
            assert srv.requests["binance"] == (3 if page == 1000 else 1)
    pd.testing.assert_frame_equal(results[1000], results[5000])
    assert len(results[1000]) == 2500 and not results[1000].index.duplicated().any()


def test_crypto_pairs_go_to_binance():
    assert looks_like_crypto("BTCUSDT") and looks_like_crypto("ETH/USDT") and looks_like_crypto("SOLBTC")
    assert not looks_like_crypto("AAPL") and not looks_like_crypto("MSFT") and not looks_like_crypto("BRK.B")


# -- the fallback chain ---------------------------------------------------------------

@pytest.mark.parametrize("answer, reason", [
    ((429, "Too Many Requests"), "HTTP 429"),
    ((500, "Internal Server Error"), "HTTP 500"),
    ((200, fixture("yahoo_chart_empty_result.json")), "empty answer"),
    ((404, fixture("yahoo_chart_not_found.json")), "No data found, symbol may be delisted"),
    ((200, '{"chart":{"result":null,"error":{"code":"Bad Request","description":"Invalid input"}}}'), "Invalid input"),
    ((200, "<html>oops</html>"), "not a chart answer"),
])
def test_yahoo_failures_fall_back_to_alphavantage(srv, tmp_path, monkeypatch, answer, reason):
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "k")
    srv.script("yahoo", "AAPL", [answer])
    closes = stock_closes(["AAPL"], "2017-01-01", "2017-06-30")["AAPL"]
    srv.serve("alphavantage", "AAPL", closes)
    r = fetch(cfg(srv, tmp_path), ["AAPL"], D(2017, 1, 1), D(2017, 6, 30))["AAPL"]
    assert r.source == "alphavantage" and len(r.bars) == len(closes)
    assert [s for s, _ in r.failures] == ["yahoo"] and reason in r.failures[0][1]
    if answer[0] in (429, 500):
        assert srv.requests["yahoo"] == 2  # retried once (retries=1), then gave up


def test_alphavantage_throttling_body_falls_back_to_stooq(srv, tmp_path, monkeypatch):
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "k")
    srv.script("yahoo", "MSFT", [(500, "")])
    srv.script("alphavantage", "MSFT", [(200, fixture("alphavantage_note_throttled.json"))])
    closes = stock_closes(["AAPL"], "2017-01-01", "2017-06-30")["AAPL"]
    srv.serve("stooq", "MSFT", closes)
    r = fetch(cfg(srv, tmp_path), ["MSFT"], D(2017, 1, 1), D(2017, 6, 30))["MSFT"]
    assert r.source == "stooq"
    assert [s for s, _ in r.failures] == ["yahoo", "alphavantage"]
    assert "Note: Thank you for using Alpha Vantage!" in r.failures[1][1]


def test_alphavantage_error_message_and_information_bodies_are_failures(srv, tmp_path, monkeypatch):
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "k")
    srv.script("alphavantage", "X1", [(200, fixture("alphavantage_error_message.json"))])
    srv.script("alphavantage", "X2", [(200, '{"Information": "This is a premium endpoint."}')])
    out = fetch(cfg(srv, tmp_path), ["X1", "X2"], D(2017, 1, 1), D(2017, 1, 31), sources=["alphavantage"])
    assert "Error Message: the parameter apikey is invalid" in out["X1"].failures[0][1]
    assert "Information: This is a premium endpoint." in out["X2"].failures[0][1]


def test_no_key_means_alphavantage_is_skipped_with_a_reason(srv, tmp_path, monkeypatch):
    monkeypatch.delenv("ALPHAVANTAGE_API_KEY", raising=False)
    out = fetch(cfg(srv, tmp_path), ["AAPL"], D(2017, 1, 1), D(2017, 1, 31), sources=["alphavantage"])
    assert "no API key" in out["AAPL"].failures[0][1] and srv.requests["alphavantage"] == 0


def test_short_answers_fail_and_the_next_source_serves(srv, tmp_path):
    closes = stock_closes(["AAPL"], "2017-01-01", "2017-06-30")["AAPL"]
    srv.serve("yahoo", "AAPL", closes.iloc[:30])  # a month of a six-month range
    srv.serve("stooq", "AAPL", closes)
    r = fetch(cfg(srv, tmp_path), ["AAPL"], D(2017, 1, 1), D(2017, 6, 30))["AAPL"]
    assert r.source == "stooq" and "fewer than" in r.failures[0][1]


def test_all_sources_failing_is_one_line_per_symbol_and_the_others_continue(srv, tmp_path, monkeypatch, caplog):
    monkeypatch.delenv("ALPHAVANTAGE_API_KEY", raising=False)
    closes = stock_closes(["AAPL"], "2017-01-01", "2017-06-30")["AAPL"]
    srv.serve("yahoo", "AAPL", closes)
    h = load_history(["AAPL", "NOPE"], D(2017, 1, 1), D(2017, 6, 30), config=cfg(srv, tmp_path))
    assert list(h.bars) == ["AAPL"]
    assert len(h.errors) == 1
    line = h.errors[0]
    assert line.startswith("NOPE: no source could serve it: yahoo: ") and "\n" not in line
    assert "No data found, symbol may be delisted" in line and "alphavantage" not in line  # no key: not in the chain
    assert "stooq: no data" in line
    with pytest.raises(HistoryError, match="NOPE"):
        load_history(["AAPL", "NOPE"], D(2017, 1, 1), D(2017, 6, 30), config=cfg(srv, tmp_path), strict=True)


# -- the cache ------------------------------------------------------------------------

def test_second_fetch_reads_no_network_and_a_longer_range_fetches_only_the_missing_dates(srv, tmp_path):
    closes = stock_closes(["AAPL"], "2016-01-01", "2017-12-31")["AAPL"]
    srv.serve("yahoo", "AAPL", closes)
    config = cfg(srv, tmp_path)
    first = fetch(config, ["AAPL"], D(2017, 1, 1), D(2017, 6, 30))["AAPL"]
    assert srv.requests["yahoo"] == 1 and not first.from_cache
    again = fetch(config, ["AAPL"], D(2017, 1, 1), D(2017, 6, 30))["AAPL"]
    assert srv.requests["yahoo"] == 1 and again.from_cache and again.source == "yahoo"
    pd.testing.assert_frame_equal(first.bars, again.bars)
    inner = fetch(config, ["AAPL"], D(2017, 2, 1), D(2017, 3, 31))["AAPL"]
    assert srv.requests["yahoo"] == 1 and len(inner.bars) < len(first.bars)
    longer = fetch(config, ["AAPL"], D(2016, 10, 1), D(2017, 9, 30))["AAPL"]
    assert srv.requests["yahoo"] == 3  # the quarter before and the quarter after, nothing else
    ranges = sorted((int(q["period1"]), int(q["period2"])) for s, q in srv.log[1:] if s == "yahoo")
    as_days = [(pd.Timestamp(a, unit="s").date(), pd.Timestamp(b, unit="s").date()) for a, b in ranges]
    assert as_days == [(D(2016, 10, 1), D(2017, 1, 1)), (D(2017, 7, 1), D(2017, 10, 1))]
    want = closes.loc["2016-10-01":"2017-09-30"].dropna()
    assert longer.bars["close"].to_numpy() == pytest.approx(want.to_numpy())
    assert (tmp_path / "cache" / "yahoo" / "AAPL_1d.parquet").exists()


def test_a_failed_answer_is_not_cached(srv, tmp_path):
    closes = stock_closes(["AAPL"], "2017-01-01", "2017-06-30")["AAPL"]
    srv.serve("yahoo", "AAPL", closes.iloc[:10])
    srv.serve("stooq", "AAPL", closes)
    config = cfg(srv, tmp_path)
    fetch(config, ["AAPL"], D(2017, 1, 1), D(2017, 6, 30))
    assert not (tmp_path / "cache" / "yahoo" / "AAPL_1d.parquet").exists()
    again = fetch(config, ["AAPL"], D(2017, 1, 1), D(2017, 6, 30))["AAPL"]
    assert again.source == "stooq" and again.from_cache  # the source that served is preferred from its cache


def test_http_network_error_is_a_source_error(tmp_path):
    async def go():
        async with Http(HttpSettings(retries=1, backoff_s=0.01, timeout_s=2)) as http:
            return await YahooSource(http, "http://127.0.0.1:9").fetch("AAPL", D(2017, 1, 1), D(2017, 1, 31))
    with pytest.raises(SourceError, match="network error"):
        asyncio.run(go())


def test_alphavantage_switches_to_time_series_daily_when_the_plan_lacks_adjusted(srv, tmp_path, monkeypatch):
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", "k")
    closes = stock_closes(["AAPL"], "2017-01-01", "2017-03-31")["AAPL"].dropna()
    daily = {"Meta Data": {"1. Information": "Daily Prices (open, high, low, close) and Volumes"},
             "Time Series (Daily)": {d.date().isoformat(): {"1. open": str(c), "2. high": str(c), "3. low": str(c),
                                                            "4. close": str(c), "5. volume": "1000"}
                                     for d, c in closes.items()}}
    premium = {"Information": "Thank you for using Alpha Vantage! This is a premium endpoint. You may subscribe to "
                              "any of the premium plans at https://www.alphavantage.co/premium/ to instantly unlock "
                              "all premium endpoints"}
    srv.script("alphavantage", "AAPL", [(200, json.dumps(premium)), (200, json.dumps(daily))])
    r = fetch(cfg(srv, tmp_path), ["AAPL"], D(2017, 1, 1), D(2017, 3, 31), sources=["alphavantage"])["AAPL"]
    assert r.source == "alphavantage" and len(r.bars) == len(closes)
    assert r.bars["adj_close"].isna().all() and r.bars["volume"].iloc[0] == 1000
    assert [q["function"] for _, q in srv.log] == ["TIME_SERIES_DAILY_ADJUSTED", "TIME_SERIES_DAILY"]


def test_an_empty_neighbouring_range_uses_the_cache_and_does_not_grow_the_cover(srv, tmp_path):
    closes = stock_closes(["AAPL"], "2016-12-01", "2017-03-31")["AAPL"]
    srv.serve("stooq", "AAPL", closes)
    config = cfg(srv, tmp_path, sources=["stooq"])
    first = fetch(config, ["AAPL"], D(2017, 1, 3), D(2017, 3, 31))["AAPL"]
    # Jan 1 (Sunday) and Jan 2 (a holiday) hold no bar: Stooq says "No data" for them
    wider = fetch(config, ["AAPL"], D(2017, 1, 1), D(2017, 3, 31))["AAPL"]
    assert wider.source == "stooq" and wider.failures == []
    pd.testing.assert_frame_equal(first.bars, wider.bars)
    assert srv.requests["stooq"] == 2
    fetch(config, ["AAPL"], D(2017, 1, 1), D(2017, 3, 31))
    assert srv.requests["stooq"] == 3  # those two days were not marked covered


def test_an_end_date_in_the_future_counts_only_the_days_until_yesterday(srv, tmp_path):
    yesterday = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
    closes = stock_closes(["AAPL"], "2017-01-01", "2017-12-31")["AAPL"].dropna().iloc[:60]
    closes.index = pd.bdate_range(end=yesterday, periods=60)
    srv.serve("yahoo", "AAPL", closes)
    start = closes.index[0].date()
    r = fetch(cfg(srv, tmp_path), ["AAPL"], start, yesterday + dt.timedelta(days=14), sources=["yahoo"])["AAPL"]
    assert r.source == "yahoo" and len(r.bars) == 60, r.failures


def test_binance_intraday_klines_through_load_history_and_bar_events(srv, tmp_path):
    from producers.history import load_history
    from producers.history.publish import bar_events

    closes = stock_closes(["AAPL"], "2017-01-01", "2017-12-31")["AAPL"].dropna().iloc[:72]
    closes.index = pd.date_range("2024-03-01", periods=72, freq="h", tz="UTC")
    srv.serve_klines("BTCUSDT", klines(closes, interval_ms=3_600_000))
    h = load_history(["BTCUSDT"], D(2024, 3, 1), D(2024, 3, 3), "1h", config=cfg(srv, tmp_path))
    assert h.fetched["BTCUSDT"].source == "binance" and len(h.bars["BTCUSDT"]) == 72
    assert h.quality["BTCUSDT"]["completeness"] == 1.0
    bars = bar_events(h.long(), "1h")
    assert len(bars) == 72 and all(b.interval == "1h" for b in bars)
    assert bars[0].ts_event == int(pd.Timestamp("2024-03-01T01:00Z").value)  # the first hour's close
    assert [b.close for b in bars] == pytest.approx(closes.to_numpy())


def test_the_user_agent_is_configurable(srv, tmp_path):
    srv.script("yahoo", "GS", [(200, fixture("yahoo_chart_GS_2023-10.json"))])
    fetch(cfg(srv, tmp_path, user_agent="Mozilla/5.0 (research)"), ["GS"], D(2023, 10, 2), D(2023, 10, 9))
    assert srv.user_agents == {"Mozilla/5.0 (research)"}
