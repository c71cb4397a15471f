"""Kraken adapter: v1 recordings (trade, ticker) and v2 fixtures."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from producers.venues.kraken import KrakenAdapter, kraken_pair
from producers.recordings.readers import read_frames
from producers.venues import get_adapter
from schemas.events import Tick

DATA = Path(__file__).resolve().parents[1] / "data"


def exact(value: float, raw: str) -> bool:
    return Decimal(repr(value)) == Decimal(raw)


def test_v1_trade_recording_one_tick_per_trade():
    a = get_adapter("kraken")
    n_entries = n_ticks = 0
    skipped = {}
    for ts, fr in read_frames(DATA / "KRAKEN.ws.48.0"):
        r = a.parse(fr, ts)
        assert r.error is None
        m = json.loads(fr)
        if isinstance(m, list):
            assert len(r.ticks) == len(m[1])
            for t, e in zip(r.ticks, m[1]):
                n_entries += 1
                assert t.symbol == m[3].replace("/", "") and t.kind == "trade"
                assert exact(t.price, e[0]) and exact(t.size, e[1])
                assert t.ts_event == int(Decimal(e[2]) * 10**9)
                assert t.side == {"b": "buy", "s": "sell"}[e[3]]
                assert t.ts_recv == ts and t.trade_id is None
            n_ticks += len(r.ticks)
        else:
            skipped[r.skipped] = skipped.get(r.skipped, 0) + 1
    assert n_ticks == n_entries == 10
    assert skipped == {"status": 1, "ack": 10, "heartbeat": 30}


def test_v1_trade_by_hand():
    frame = '[993,[["354.11000000","0.89594024","1618678142.557535","s","l",""]],"trade","XMR/USD"]'
    assert KrakenAdapter().parse(frame, 42).ticks == [Tick(
        symbol="XMRUSD", venue="kraken", kind="trade", ts_event=1618678142_557535000, ts_recv=42,
        price=354.11, size=0.89594024, side="sell")]


def test_v1_ticker_recording_one_quote_per_frame():
    a = get_adapter("kraken")
    quotes = 0
    for ts, fr in read_frames(DATA / "KRAKEN.ws.49.0"):
        r = a.parse(fr, ts)
        assert r.error is None
        m = json.loads(fr)
        if isinstance(m, list):
            (q,) = r.ticks
            quotes += 1
            assert q.kind == "quote" and q.symbol == m[3].replace("/", "")
            assert exact(q.bid, m[1]["b"][0]) and exact(q.bid_size, m[1]["b"][2])
            assert exact(q.ask, m[1]["a"][0]) and exact(q.ask_size, m[1]["a"][2])
            assert q.ts_event == q.ts_recv == ts
        else:
            assert r.ticks == [] and r.skipped in ("status", "ack", "heartbeat")
    assert quotes == 18


@pytest.mark.parametrize("when", ["1e999999999", "1E+999999999", "9" * 40 + "e99999"])
def test_a_time_too_large_for_decimal_is_a_named_error(when):
    # decimal.Overflow is no OverflowError: the fuzz test once saw it leak as "internal: Overflow"
    frame = f'[993,[["354.11000000","0.89594024","{when}","s","l",""]],"trade","XMR/USD"]'
    r = KrakenAdapter().parse(frame, 42)
    assert r.ticks == [] and r.error is not None and not r.error.startswith("internal:"), r.error
    assert "timestamp" in r.error or "time" in r.error


def test_symbols_keep_venue_base_names():
    a = KrakenAdapter()
    f = '[1,{"a":["1.0",1,"1.0"],"b":["0.9",1,"2.0"]},"ticker","XBT/USD"]'
    assert a.parse(f, 1).ticks[0].symbol == "XBTUSD"


def test_v2_fixtures():
    a = KrakenAdapter()
    lines = (DATA / "frames" / "kraken_v2.jsonl").read_bytes().splitlines()
    r = [a.parse(line, 5) for line in lines]
    (t,) = r[0].ticks
    assert t == Tick(symbol="MATICUSD", venue="kraken", kind="trade", ts_event=1695628177_708706000,
                     ts_recv=5, price=0.5117, size=40.0, side="sell", trade_id="4665906", seq=4665906)
    assert [x.trade_id for x in r[1].ticks] == ["4665846", "4665847"]
    assert exact(r[1].ticks[1].size, "1136.19677815")
    (q,) = r[2].ticks
    assert (q.symbol, q.bid, q.bid_size, q.ask, q.ask_size, q.ts_event) == (
        "ALGOUSD", 0.10025, 740.0, 0.10036, 1361.44813783, 5)
    assert [x.skipped for x in r[3:7]] == ["heartbeat", "status", "ack", "book"]
    assert r[7].error == "venue error: subscribe: Currency pair not supported"
    (s,) = r[8].ticks  # v1 spread
    assert (s.symbol, s.bid, s.ask, s.bid_size, s.ask_size, s.ts_event) == (
        "XBTUSD", 5698.4, 5700.0, 1.01234567, 0.98765432, 1542057299_545897000)


@pytest.mark.parametrize("frame, fragment", [
    ('[1,[["1.0","1.0","abc","b","l",""]],"trade","XBT/USD"]', "trade time"),
    ('[1,[["1.0","1.0","1.5","x","l",""]],"trade","XBT/USD"]', "bad side"),
    ('[1,[["1.0"]],"trade","XBT/USD"]', "trade entry"),
    ('[1,{"a":[]},"ticker","XBT/USD"]', "ticker without"),
    ('[1,2]', "unrecognized"),
    ('{"event":"subscriptionStatus","status":"error","errorMessage":"Currency pair not supported"}', "venue error"),
    ('{"channel":"trade","data":[{"symbol":"BTC/USD","side":"buy","price":1,"qty":1,"trade_id":-1,"timestamp":"2023-09-25T07:49:37Z"}]}', "trade_id"),
    ('"hello"', "not a JSON object"),
])
def test_errors(frame, fragment):
    r = KrakenAdapter().parse(frame, 1)
    assert r.ticks == [] and fragment in r.error


def test_subscribe_messages():
    v2 = [json.loads(m) for m in KrakenAdapter().subscribe_messages(["BTCUSD", "ETH/EUR"])]
    assert v2[0] == {"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USD", "ETH/EUR"], "snapshot": False}}
    assert v2[1]["params"]["event_trigger"] == "bbo"
    v1 = [json.loads(m) for m in KrakenAdapter(version=1).subscribe_messages(["XBTUSD"])]
    assert v1[0] == {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "trade"}}
    assert kraken_pair("ADAXBT") == "ADA/XBT"
