"""Coinbase adapter: Exchange ws-feed recording and Advanced Trade fixtures."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from producers.venues.coinbase import CoinbaseAdapter, product_id
from producers.venues.frames import iso8601_to_ns
from producers.recordings.readers import ReadStats, read_frames
from producers.venues import get_adapter

DATA = Path(__file__).resolve().parents[1] / "data"


def exact(value: float, raw: str) -> bool:
    return Decimal(repr(value)) == Decimal(raw)


def iso_ns_reference(s: str) -> int:
    """Independent reference: whole seconds via datetime, fraction via Decimal."""
    head, _, frac = s.rstrip("Z").partition(".")
    secs = int(datetime.fromisoformat(head).replace(tzinfo=timezone.utc).timestamp())
    return secs * 10**9 + int(Decimal("0." + (frac or "0")) * 10**9)


def test_recording_one_tick_per_trade_or_quote_frame():
    a = get_adapter("coinbase")
    stats = ReadStats()
    types, kinds, skipped = Counter(), Counter(), Counter()
    for ts, fr in read_frames(DATA / "COINBASE.ws.28.0", stats=stats):
        r = a.parse(fr, ts)
        assert r.error is None, (fr[:200], r.error)
        m = json.loads(fr)
        types[m["type"]] += 1
        if not r.ticks:
            skipped[r.skipped] += 1
            continue
        (t,) = r.ticks
        kinds[t.kind] += 1
        assert t.symbol == m["product_id"].replace("-", "") and t.ts_recv == ts
        assert t.seq == m["sequence"]
        if m["type"] in ("match", "last_match"):
            assert t.kind == "trade"
            assert exact(t.price, m["price"]) and exact(t.size, m["size"])
            assert t.side == {"buy": "sell", "sell": "buy"}[m["side"]]  # maker side flipped
            assert t.trade_id == str(m["trade_id"])
            assert t.ts_event == iso_ns_reference(m["time"])
        else:
            assert m["type"] == "ticker" and t.kind == "quote"
            assert exact(t.bid, m["best_bid"]) and exact(t.ask, m["best_ask"])
            assert t.bid_size is None and t.ask_size is None  # 2021 tickers carry no sizes
            assert t.ts_event == iso_ns_reference(m["time"])
    assert stats.outgoing == 3 and stats.headers == 1
    assert types["match"] + types["last_match"] == kinds["trade"] == 107
    assert types["ticker"] == kinds["quote"] == 107
    assert skipped == {"ack": 3, "book": 9_729}


def test_last_match_by_hand():
    frame = ('{"type":"last_match","trade_id":881613,"maker_order_id":"m","taker_order_id":"t",'
             '"side":"sell","size":"0.04","price":"14.7775","product_id":"BAND-GBP",'
             '"sequence":333938798,"time":"2021-04-17T16:43:30.244075Z"}')
    (t,) = CoinbaseAdapter().parse(frame, 7).ticks
    assert (t.symbol, t.kind, t.side, t.price, t.size, t.trade_id, t.seq) == (
        "BANDGBP", "trade", "buy", 14.7775, 0.04, "881613", 333938798)
    assert t.ts_event == 1618677810_244075000


def test_advanced_trade_fixtures():
    a = CoinbaseAdapter()
    lines = (DATA / "frames" / "coinbase_advanced.jsonl").read_bytes().splitlines()
    r = [a.parse(line, 99) for line in lines]
    (t0,) = r[0].ticks
    assert (t0.symbol, t0.price, t0.size, t0.trade_id, t0.side) == ("ETHUSD", 1260.01, 0.3, "000000000", "sell")
    assert t0.ts_event == 1565815347_265000000
    t1, t2 = r[1].ticks
    assert t1.ts_event == 1675973976_123456789  # nanosecond fraction kept exactly
    assert (t1.side, t2.side) == ("buy", "sell")
    assert exact(t1.size, "0.00123456") and t2.ts_event == 1675973976_200000000
    (q,) = r[2].ticks
    assert (q.symbol, q.kind, q.bid, q.bid_size, q.ask, q.ask_size) == (
        "BTCUSD", "quote", 21931.98, 8000.21, 21933.98, 8038.07770938)
    assert q.ts_event == 1675974637_167359596
    assert [x.skipped for x in r[3:6]] == ["heartbeat", "ack", "book"]
    (tk,) = r[6].ticks  # Exchange ticker with sizes
    assert (tk.bid_size, tk.ask_size, tk.seq) == (0.46688654, 1.5663704, 37475248783)
    assert r[7].skipped == "heartbeat"
    assert r[8].error == "venue error: Failed to subscribe ETH-USDX is not a valid product"


@pytest.mark.parametrize("raw, ns", [
    ("2021-04-17T16:43:30.244075Z", 1618677810_244075000),
    ("2021-04-17T16:43:30Z", 1618677810_000000000),
    ("2023-02-09T20:30:37.167359596Z", 1675974637_167359596),
    ("2023-02-09T20:30:37.1673595969999Z", 1675974637_167359596),
    ("2023-02-09T21:30:37.5+01:00", 1675974637_500000000),
])
def test_iso_exact(raw, ns):
    assert iso8601_to_ns(raw) == ns


@pytest.mark.parametrize("frame, fragment", [
    ('{"type":"match","product_id":"BTC-USD","side":"up","size":"1","price":"1","trade_id":1,"time":"2021-04-17T16:43:30Z"}', "bad side"),
    ('{"type":"match","product_id":"BTC-USD","side":"buy","size":"1","price":"1","trade_id":1,"time":"2021-13-17T16:43:30Z"}', "bad time"),
    ('{"type":"match","product_id":"BTC-USD","side":"buy","size":"1","price":"x","trade_id":1,"time":"2021-04-17T16:43:30Z"}', "bad price"),
    ('{"type":"wat"}', "unknown message type"),
    ('{"channel":"wat","events":[]}', "unknown channel"),
    ('[]', "not a JSON object"),
])
def test_errors(frame, fragment):
    r = CoinbaseAdapter().parse(frame, 1)
    assert r.ticks == [] and fragment in r.error


def test_subscribe():
    msg = json.loads(CoinbaseAdapter().subscribe_messages(["BTCUSD", "ETH-EUR"])[0])
    assert msg == {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-EUR"], "channels": ["matches", "ticker"]}
    assert product_id("SOLUSDC") == "SOL-USDC"
