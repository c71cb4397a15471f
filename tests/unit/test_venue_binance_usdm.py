"""Binance USD-M futures adapter on hand-written documented frames."""

from __future__ import annotations

from pathlib import Path

from producers.venues import get_adapter
from schemas.events import Tick

FRAMES = Path(__file__).resolve().parents[1] / "data" / "frames" / "binance_usdm.jsonl"


def results():
    a = get_adapter("binance-usdm")
    return [a.parse(line, 1_000 + i) for i, line in enumerate(FRAMES.read_bytes().splitlines())]


def test_fixture_frames_by_hand():
    r = results()
    assert all(x.error is None for x in r), [x.error for x in r]
    assert r[0].ticks == [Tick(symbol="BTCUSDT", venue="binance-usdm", kind="trade",
                               ts_event=123456785_000_000, ts_recv=1000, price=0.001, size=100.0,
                               side="sell", trade_id="5933014", seq=5933014)]
    assert r[1].ticks == [Tick(symbol="BNBUSDT", venue="binance-usdm", kind="quote",
                               ts_event=1568014460891_000_000, ts_recv=1001, bid=25.3519,
                               bid_size=31.21, ask=25.3652, ask_size=40.66, seq=400900217)]
    assert r[2].ticks == [Tick(symbol="ETHUSDT", venue="binance-usdm", kind="trade",
                               ts_event=1649839266192_000_000, ts_recv=1002, price=10000.19,
                               size=0.239, side="buy", trade_id="1000000000", seq=1000000000)]
    # INSURANCE_FUND, ADL and NA trades are not order-book prints: skipped, counted
    assert [x.skipped for x in r[3:6]] == ["non_market_trade"] * 3
    assert all(x.ticks == [] for x in r[3:6])
    # raw (non-combined) payloads
    (agg,) = r[6].ticks
    assert (agg.trade_id, agg.price, agg.size, agg.side) == ("5933015", 0.002, 7.5, "buy")
    (q,) = r[7].ticks
    assert q.ts_event == 1568014460892_000_000 and q.seq == 400900218
    assert r[8].skipped == "book" and r[9].skipped == "ack"


def test_spot_adapter_keeps_non_market_trades_shape():
    # the spot adapter does not filter on X (spot trades carry none)
    spot = get_adapter("binance")
    line = FRAMES.read_bytes().splitlines()[3]
    assert spot.parse(line, 1).ticks[0].price == 64000.1


def test_trade_without_x_is_a_market_trade():
    a = get_adapter("binance-usdm")
    frame = b'{"stream":"btcusdt@trade","data":{"e":"trade","E":2,"T":1,"s":"BTCUSDT","t":9,"p":"1.5","q":"2","m":true}}'
    assert a.parse(frame, 5).ticks[0].side == "sell"


def test_url():
    a = get_adapter("binance-usdm")
    assert a.url_for(["BTCUSDT"]) == "wss://fstream.binance.com/stream?streams=btcusdt@aggTrade/btcusdt@bookTicker"
