"""Binance spot adapter against the recordings: one canonical tick per trade or
quote frame, exact prices/sizes, symbols and timestamps."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from producers.venues.binance import BinanceAdapter
from producers.recordings.readers import ReadStats, read_frames
from producers.venues import UnknownVenueError, available, get_adapter
from schemas.events import Tick

DATA = Path(__file__).resolve().parents[1] / "data"
HFT = DATA / "spot_btcusdt_20240808.ndjson.gz"


def exact(value: float, raw: str) -> bool:
    return Decimal(repr(value)) == Decimal(raw)


@pytest.fixture(scope="module")
def hft_results():
    adapter = get_adapter("binance")
    stats = ReadStats()
    out = [(ts, fr, adapter.parse(fr, ts)) for ts, fr in read_frames(HFT, stats=stats)]
    return stats, out


def test_hftbacktest_counts(hft_results):
    stats, results = hft_results
    assert stats.format == "hftbacktest"
    assert stats.lines == 41_249 and stats.snapshots == 1 and stats.frames == 41_248
    kinds = Counter()
    skipped = Counter()
    for _, _, r in results:
        assert r.error is None
        if r.ticks:
            assert len(r.ticks) == 1 and r.skipped is None
            kinds[r.ticks[0].kind] += 1
        else:
            skipped[r.skipped] += 1
    assert kinds == {"trade": 9_757, "quote": 28_040}
    assert skipped == {"book": 3_451}


def test_hftbacktest_ticks_match_raw(hft_results):
    _, results = hft_results
    raw_ts = {}
    with gzip.open(HFT, "rb") as fh:
        for line in fh:
            ts, _, frame = line.rstrip(b"\n").partition(b" ")
            raw_ts[frame] = int(ts)
    for ts, fr, r in results:
        assert raw_ts[fr] == ts
        if not r.ticks:
            continue
        (tick,) = r.ticks
        msg = json.loads(fr)
        d = msg["data"]
        assert tick.venue == "binance" and tick.symbol == "BTCUSDT" == d["s"]
        assert tick.ts_recv == ts
        if msg["stream"] == "btcusdt@trade":
            assert tick.kind == "trade"
            assert exact(tick.price, d["p"]) and exact(tick.size, d["q"])
            assert tick.ts_event == d["T"] * 1_000_000
            assert tick.side == ("sell" if d["m"] else "buy")
            assert tick.trade_id == str(d["t"]) and tick.seq == d["t"]
            assert tick.bid is None and tick.ask is None
        else:
            assert msg["stream"] == "btcusdt@bookTicker" and tick.kind == "quote"
            assert exact(tick.bid, d["b"]) and exact(tick.bid_size, d["B"])
            assert exact(tick.ask, d["a"]) and exact(tick.ask_size, d["A"])
            assert tick.seq == d["u"] and tick.ts_event == ts  # spot bookTicker has no time
            assert tick.price is None and tick.side is None


def test_first_trade_by_hand(hft_results):
    _, results = hft_results
    tick = next(r.ticks[0] for _, _, r in results if r.ticks and r.ticks[0].kind == "trade")
    assert tick == Tick(symbol="BTCUSDT", venue="binance", kind="trade",
                        ts_event=1723161255342_000_000, ts_recv=1723161254087896568,
                        price=61837.63, size=0.02, side="sell", trade_id="3735683259",
                        seq=3735683259)


def test_cryptofeed_recording_aggtrade_bookticker_depth_kline():
    adapter = BinanceAdapter()
    kinds, skipped = Counter(), Counter()
    for ts, fr in read_frames(DATA / "BINANCE.ws.1.0"):
        r = adapter.parse(fr, ts)
        assert r.error is None, (fr, r.error)
        msg = json.loads(fr)
        stream, d = msg["stream"], msg["data"]
        if not r.ticks:
            skipped[r.skipped] += 1
            continue
        (tick,) = r.ticks
        kinds[tick.kind] += 1
        assert tick.symbol == d["s"] and tick.ts_recv == ts
        if stream.endswith("@aggTrade"):
            assert exact(tick.price, d["p"]) and exact(tick.size, d["q"])
            assert tick.trade_id == str(d["a"]) and tick.seq == d["a"]
            assert tick.ts_event == d["T"] * 1_000_000
            assert tick.side == ("sell" if d["m"] else "buy")
        else:
            assert exact(tick.bid, d["b"]) and exact(tick.ask_size, d["A"])
    assert kinds == {"trade": 2, "quote": 84}
    assert skipped == {"book": 177, "kline": 2}


def test_cryptofeed_receive_time_is_exact():
    ts, frame = next(iter(read_frames(DATA / "BINANCE.ws.1.0")))
    assert ts == 1633998512063356900  # "1633998512.0633569" via Decimal
    assert frame.startswith(b'{"stream":"nknusdt@depth@100ms"')


def test_raw_payloads_and_str_frames():
    a = BinanceAdapter()
    trade = '{"e":"trade","E":1,"s":"ethbtc","t":12,"p":"0.05000000","q":"1.5","T":1723161255342,"m":false,"M":true}'
    (t,) = a.parse(trade, 5).ticks
    assert (t.symbol, t.side, t.price, t.size, t.trade_id, t.seq) == ("ETHBTC", "buy", 0.05, 1.5, "12", 12)
    book = b'{"u":7,"s":"BTCUSDT","b":"1.0","B":"2.0","a":"1.5","A":"3"}'
    (q,) = a.parse(book, 9).ticks
    assert (q.kind, q.bid, q.ask_size, q.ts_event, q.seq) == ("quote", 1.0, 3.0, 9, 7)
    assert a.parse(bytearray(book), 9).ticks[0] == q


def test_fast_and_checked_paths_agree(hft_results):
    a = BinanceAdapter()
    _, results = hft_results
    for ts, fr, r in results[:3000]:
        assert a._slow(fr, ts) == r


@pytest.mark.parametrize("frame, reason", [
    (b'{"result":null,"id":3}', "ack"),
    (b'{"stream":"btcusdt@depth20@100ms","data":{"lastUpdateId":1,"bids":[],"asks":[]}}', "book"),
    (b'{"lastUpdateId":1,"bids":[],"asks":[]}', "book"),
    (b'{"stream":"btcusdt@kline_1m","data":{"e":"kline"}}', "kline"),
])
def test_skips(frame, reason):
    r = BinanceAdapter().parse(frame, 1)
    assert r.ticks == [] and r.error is None and r.skipped == reason


@pytest.mark.parametrize("frame, fragment", [
    (b"", "undecodable"),
    (b"not json", "undecodable"),
    (b"[1,2,3]", "not a JSON object"),
    (b'{"error":{"code":2,"msg":"Invalid request"},"id":1}', "venue error"),
    (b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"nan","q":"1","T":1,"m":true}}', "bad price"),
    (b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"1e999","T":1,"m":true}}', "quantity"),
    (b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"1","T":-5,"m":true}}', "trade time"),
    (b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTC/USDT!","t":1,"p":"1","q":"1","T":5,"m":true}}', "symbol"),
    (b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"1","T":5,"m":"yes"}}', "maker flag"),
    (b'{"stream":"btcusdt@markPrice","data":{"e":"markPriceUpdate"}}', "unsupported stream"),
    (b'{"e":"outboundAccountPosition"}', "unknown frame"),
    (12345, "not bytes"),
    (b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":18446744073709551616,"p":"1","q":"1","T":5,"m":true}}', "trade id"),
    (b'{"e":"bookTicker","s":"BTCUSDT","u":-1,"b":"1","B":"1","a":"1","A":"1"}', "update id"),
])
def test_errors_never_raise(frame, fragment):
    r = BinanceAdapter().parse(frame, 1)  # type: ignore[arg-type]
    assert r.ticks == [] and r.skipped is None and fragment in r.error


def test_connection_side():
    a = BinanceAdapter()
    assert a.url_for(["BTCUSDT", "ethusdt"]) == (
        "wss://stream.binance.com:9443/stream?streams="
        "btcusdt@trade/btcusdt@bookTicker/ethusdt@trade/ethusdt@bookTicker")
    assert a.url_for(["BTCUSDT"], "ws://localhost:9000").startswith("ws://localhost:9000/stream?streams=")
    assert a.subscribe_messages(["BTCUSDT"]) == []
    assert BinanceAdapter(streams=("aggTrade",)).stream_names(["btcusdt"]) == ["btcusdt@aggTrade"]


def test_registry():
    assert {"binance", "binance-usdm", "coinbase", "kraken"} <= set(available())
    for name in ("binance", "binance-usdm", "coinbase", "kraken"):
        adapter = get_adapter(name)
        assert adapter.name == name and adapter.default_url.startswith("wss://")
    with pytest.raises(UnknownVenueError, match="unknown venue 'ftx'.*binance"):
        get_adapter("ftx")
    assert get_adapter("kraken", version=1).default_url == "wss://ws.kraken.com"


def test_ticks_encode_as_tick_json(hft_results):
    _, results = hft_results
    ticks = [r.ticks[0] for _, _, r in results[:200] if r.ticks]
    enc = msgspec.json.Encoder()
    for t in ticks:
        assert msgspec.json.decode(enc.encode(t), type=Tick) == t
