"""The compiled Binance trade scan (producers/fastpath/binance_scan.py, binance_encode.py)
against its reference: the per-frame path (``parse`` -> ``validate`` -> msgspec
encode). Output bytes, dead letters, summary counts and the validator's quality
state must be identical for any input; the scan must actually take the frames it
is built for (else the equality would hold trivially)."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers import outcomes
from producers.recordings import normalize as normalize_mod
from producers.venues.binance import BinanceAdapter
from producers.fastpath.binance_scan import FALLBACK, MAX_SYMBOLS, QUOTE, TRADE, scan_frames, tick_template
from producers.venues.binance_usdm import BinanceUsdmAdapter
from producers.recordings.readers import read_frames
from producers.validation import Validator
from schemas.events import Tick

DATA = Path(__file__).resolve().parents[1] / "data"
_enc = msgspec.json.Encoder()

TRADE_FRAME = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT",'
         '"t":%d,"p":"%s","q":"%s","T":%d,"m":%s,"M":true}}')


def trade(t=3735683259, p="61837.63000000", q="0.02000000", T=1723161255342, m="true", sym=None):
    f = TRADE_FRAME % (t, p, q, T, m)
    if sym is not None:
        f = f.replace("BTCUSDT", sym).replace("btcusdt", sym.lower())
    return f.encode()


def _run(fn, frames, adapter_cls, validate, **kw):
    """(lines, dead letters, summary, quality) of one path; dead letters stamped by a counter."""
    clock = itertools.count(1).__next__
    old = outcomes._clock
    outcomes._clock = clock
    try:
        v = Validator() if validate else None
        s = normalize_mod.Summary()
        if fn == "reference":
            items = list(normalize_mod.normalize_frames(frames, adapter_cls(), v, s))
            lines = b"".join(_enc.encode(x) + b"\n" for x in items if type(x) is Tick)
            dead = [_enc.encode(x) for x in items if type(x) is not Tick]
        else:
            lines, dead = b"", []
            for got, d in normalize_mod.normalize_encoded(frames, adapter_cls(), v, s, **kw):
                lines += got
                dead += [_enc.encode(x) for x in d]
        quality = v.quality() if v else None  # dataclasses: compared by value
        return lines, dead, s.to_dict(), quality
    finally:
        outcomes._clock = old


def assert_same(frames, adapter_cls=BinanceAdapter, validate=True, chunks=(1000,)):
    ref = _run("reference", frames, adapter_cls, validate)
    for chunk in chunks:
        got = _run("encoded", frames, adapter_cls, validate, chunk_size=chunk)
        assert got[0] == ref[0], f"output differs (chunk {chunk})"
        assert got[1:] == ref[1:], f"dead letters / summary / quality differ (chunk {chunk})"
    return ref


def scan(frames: list[bytes], recv: list[int] | None = None):
    """Run the kernel alone: (status, first float column, second, encoded records)."""
    n = len(frames)
    buf = np.frombuffer(b"".join(frames), dtype=np.uint8)
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(f) for f in frames], out=starts[1:])
    recv_a = np.array(recv if recv is not None else [1] * n, dtype=np.int64)
    tpl, off = tick_template(b'"binance"')
    out = np.empty(len(buf) + n * (int(off[-1]) + 64), dtype=np.uint8)
    status = np.empty(n, dtype=np.int8)
    floats = [np.empty(n) for _ in range(4)]
    out_off = np.empty(n + 1, dtype=np.int64)
    scan_frames(buf, starts, recv_a, tpl, off, out, status, np.empty(n, dtype=np.int64),
                np.empty(2 * MAX_SYMBOLS, dtype=np.int64), *floats,
                np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64), out_off)
    records = [out[out_off[i]:out_off[i + 1]].tobytes() for i in range(n)]
    return status, floats[0], floats[1], records


def reference_record(frame: bytes, ts_recv: int = 1) -> bytes | None:
    res = BinanceAdapter().parse(frame, ts_recv)
    return _enc.encode(res.ticks[0]) + b"\n" if res.ticks else None


# --------------------------------------------------------------------------- recordings

def test_recording_trades_all_take_the_scan_and_match():
    frames = [(ts, fr) for ts, fr in read_frames(DATA / "spot_btcusdt_20240808.ndjson.gz")
              if b'@trade"' in fr[:40]]
    assert len(frames) == 9757
    status, price, size, records = scan([f for _, f in frames], [t for t, _ in frames])
    assert (status == TRADE).all()  # every real trade frame is in the canonical layout
    for (ts, fr), rec, p, q in zip(frames[:500], records, price, size):
        raw = json.loads(fr)["data"]
        assert p == float(raw["p"]) and q == float(raw["q"])
        assert rec == reference_record(fr, ts)


def test_recording_quotes_take_the_scan_and_match():
    frames = [(ts, fr) for ts, fr in read_frames(DATA / "spot_btcusdt_20240808.ndjson.gz")
              if b'@bookTicker"' in fr[:40]]
    assert len(frames) == 28040
    status, bid, _, records = scan([f for _, f in frames], [t for t, _ in frames])
    assert (status == QUOTE).all()
    for (ts, fr), rec, b in zip(frames[:500], records, bid):
        assert b == float(json.loads(fr)["data"]["b"])
        assert rec == reference_record(fr, ts)


def test_mixed_recording_takes_the_scan_for_trades_quotes_and_around_depth_frames():
    """Trades, bookTickers and depth updates interleaved (the recording as captured):
    the depth frames give no tick, so the runs of scanned frames go on across them."""
    import producers.fastpath.binance_encode as be

    frames = list(read_frames(DATA / "spot_btcusdt_20240808.ndjson.gz"))
    enc = be.ChunkEncoder(BinanceAdapter(), Validator(), normalize_mod.normalize_chunk)
    s = normalize_mod.Summary()
    for lo in range(0, len(frames), 1000):
        chunk = frames[lo:lo + 1000]
        enc.encode_chunk([f for _, f in chunk], [t for t, _ in chunk], s)
    assert s.ticks == 37797 and s.skipped == {"book": 3451}
    assert enc.scanned > 0.95 * s.ticks


@pytest.mark.parametrize("adapter_cls", [BinanceAdapter, BinanceUsdmAdapter])
@pytest.mark.parametrize("validate", [True, False])
def test_recordings_match_reference(adapter_cls, validate):
    frames = list(read_frames(DATA / "spot_btcusdt_20240808.ndjson.gz"))
    frames += list(read_frames(DATA / "frames" / "binance_usdm.jsonl"))
    frames += list(read_frames(DATA / "BINANCE.ws.1.0"))
    ref = assert_same(frames, adapter_cls, validate, chunks=(1000, 97))
    assert ref[2]["ticks_by_kind"]["trade"] > 9000


# --------------------------------------------------------------------------- numbers

EDGE_DECIMALS = [
    "61837.63000000", "0.00001000", "0.00001", "0.000010", "0.00000999", "0.000001",
    "123456789012345", "123456789012345.0", "1234567890123456", "999999999999999.9",
    "99999999999999.99", "12345678901234.5", "1234567890.12345", "1234567890.123456",
    "0", "0.0", "0.00000000", "00.1", "01", "1.", ".5", "1e5", "1E5", "-1", "+1", " 1",
    "1 ", "1.5e-3", "100", "100.000", "10.10", "0.1", "0.30000000000000004", "5e-324",
    "1.7976931348623157e308", "NaN", "inf", "", "1,5", "0x10", "١٢", "1\\u0030",
]


@pytest.mark.parametrize("p", EDGE_DECIMALS)
def test_decimal_edges_match_reference(p):
    frames = [trade(p=p), trade(q=p), trade(p=p, q=p)]
    status, price, _, records = scan(frames)
    for fr, stat, rec in zip(frames, status, records):
        if stat == TRADE:
            assert rec == reference_record(fr)
        else:
            assert rec == b""
    assert_same([(1, f) for f in frames], chunks=(1000, 1))


def test_the_scan_takes_plain_decimals_and_leaves_the_rest():
    ok = ["0.00001", "123456789012345.0", "100.000", "0", "61837.63000000"]
    fallback = ["0.000009", "1234567890123456", "1234567890.123456", "01", "1.", "1e5", "-1"]
    status, _, _, _ = scan([trade(p=p) for p in ok + fallback])
    assert list(status) == [TRADE] * len(ok) + [FALLBACK] * len(fallback)


decimal_strings = st.builds(
    lambda i, f: i + ("." + f if f is not None else ""),
    st.one_of(st.just("0"), st.from_regex(r"[1-9][0-9]{0,16}", fullmatch=True)),
    st.one_of(st.none(), st.from_regex(r"[0-9]{1,20}", fullmatch=True)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(p=decimal_strings, q=decimal_strings)
def test_decimals_are_exact(p, q):
    fr = trade(p=p, q=q)
    status, price, size, records = scan([fr])
    if status[0] == TRADE:
        assert price[0] == float(p) and size[0] == float(q)
        assert records[0] == reference_record(fr)


# --------------------------------------------------------------------------- layouts

def _variants(rng: random.Random) -> list[bytes]:
    """Frames near the canonical layout: reordered and extra keys, whitespace, escapes,
    duplicates, other value types, USD-M X values, odd symbols, envelopes."""
    d = {"e": "trade", "E": 1723161255343, "s": "BTCUSDT", "t": 3735683259, "p": "61837.63",
         "q": "0.02", "T": 1723161255342, "m": True, "M": True}
    items = list(d.items())
    rng.shuffle(items)
    x = rng.random()
    if x < 0.1:
        items.append(("X", rng.choice(["MARKET", "INSURANCE_FUND", "NA", None, 5])))
    elif x < 0.2:
        items.append((rng.choice(["t", "p", "s", "m", "T", "E", "zz"]), rng.choice(["1", 2, None, [], {}])))
    elif x < 0.3:
        k = rng.randrange(len(items))
        items[k] = (items[k][0], rng.choice(["1", 2, -3, 2.5, None, True, "é", [], {"a": 1}, 2**70, 10**15]))
    elif x < 0.35:
        del items[rng.randrange(len(items))]
    body = ",".join(json.dumps(k) + ":" + json.dumps(v, ensure_ascii=rng.random() < 0.5)
                    for k, v in items)
    if rng.random() < 0.1:
        body = body.replace('"s"', '"\\u0073"')
    frame = '{"stream":"btcusdt@trade","data":{' + body + "}}"
    y = rng.random()
    if y < 0.15:  # whitespace between tokens
        frame = frame.replace(":", rng.choice([" : ", ":\n", "\t:"])).replace(",", rng.choice([" ,", ",\r\n"]))
    elif y < 0.2:
        frame = " " + frame + rng.choice([" ", "\n", "x", "}", ""])
    elif y < 0.25:
        frame = frame.replace('"stream":"btcusdt@trade",', "") + ""
    elif y < 0.3:
        frame = frame.replace("BTCUSDT", rng.choice(["btcusdt", "BtcUsdt", "BTC-USDT", "", "ÄBC", "B" * 40]))
    elif y < 0.35:
        frame = frame.replace('{"stream"', '{"id":1,"stream"')
    return [frame.encode()]


def _quote_variants(rng: random.Random) -> list[bytes]:
    """bookTicker frames near the canonical layout (spot and USD-M shapes)."""
    d = {"e": "bookTicker", "u": 400900217, "E": 1568014460893, "T": 1568014460891, "s": "BNBUSDT",
         "b": "25.35190000", "B": "31.21000000", "a": "25.36520000", "A": "40.66000000"}
    if rng.random() < 0.5:
        for k in ("e", "E", "T"):
            d.pop(k)
    elif rng.random() < 0.3:
        d.pop("T")
    items = list(d.items())
    rng.shuffle(items)
    x = rng.random()
    if x < 0.15:
        k = rng.randrange(len(items))
        items[k] = (items[k][0], rng.choice(["1", 2, -3, 2.5, None, True, "0.000001", "1e3", "",
                                             2**70, 10**15, "25.351900000000001", "00.5", "99999999999999999"]))
    elif x < 0.25:
        items.append((rng.choice(["u", "b", "A", "T", "E", "t", "p", "zz"]), rng.choice(["1", 2, None])))
    elif x < 0.3:
        del items[rng.randrange(len(items))]
    body = ",".join(json.dumps(k) + ":" + json.dumps(v) for k, v in items)
    frame = '{"stream":"bnbusdt@bookTicker","data":{' + body + "}}"
    y = rng.random()
    if y < 0.1:
        frame = frame.replace(",", " ,\n")
    elif y < 0.15:
        frame = frame.replace("@bookTicker", "@trade@bookTicker")
    elif y < 0.2:
        frame = frame.replace('"stream":"bnbusdt@bookTicker",', "")
    return [frame.encode()]


QUOTE_TIMES = ['', ',"T":0', ',"E":0', ',"T":1568014460891', ',"E":1568014460893',
               ',"T":1568014460891,"E":1568014460893', ',"E":1568014460893,"T":1568014460891',
               ',"E":1000000000000000', ',"T":1000000000000000', ',"T":9223372036854',
               ',"T":9223372036855', ',"T":1,"E":1000000000000000', ',"T":null', ',"E":-1',
               ',"T":"1568014460891"', ',"T":1.5', ',"T":01']


@pytest.mark.parametrize("times", QUOTE_TIMES)
def test_quote_times_match_reference(times):
    fr = ('{"stream":"bnbusdt@bookTicker","data":{"u":400900217,"s":"BNBUSDT","b":"25.3519",'
          '"B":"31.21","a":"25.3652","A":"40.66"%s}}' % times).encode()
    status, _, _, records = scan([fr], [1_568_014_460_899_000_000])
    if status[0] == QUOTE:
        assert records[0] == reference_record(fr, 1_568_014_460_899_000_000)
    assert_same([(1_568_014_460_899_000_000, fr)] * 3, chunks=(1000, 1))


def test_quote_layout_variants_match_reference():
    rng = random.Random(5)
    frames = [(1_568_014_460_893_000_000 + i, f) for i in range(3000) for f in _quote_variants(rng)]
    status, *_ = scan([f for _, f in frames], [t for t, _ in frames])
    assert 0.3 < (status == QUOTE).mean() < 0.95
    assert_same(frames, chunks=(1000, 13, 1))
    assert_same(frames, BinanceUsdmAdapter, chunks=(1000,))


def test_layout_variants_match_reference():
    rng = random.Random(11)
    frames = [(i, f) for i in range(3000) for f in _variants(rng)]
    status, *_ = scan([f for _, f in frames], [t for t, _ in frames])
    assert 0.3 < (status == TRADE).mean() < 0.95  # both paths are exercised
    assert_same(frames, chunks=(1000, 13, 1))
    assert_same(frames, BinanceUsdmAdapter, chunks=(1000,))


@st.composite
def mutated_chunk(draw):
    """A chunk of real-layout trade frames, some mutated byte-wise."""
    n = draw(st.integers(1, 40))
    frames = []
    t = 1000
    for i in range(n):
        t += draw(st.sampled_from([1, 1, 1, 0, -5, 2]))
        what = draw(st.sampled_from(["trade", "trade", "quote", "depth"]))
        if what == "trade":
            fr = bytearray(trade(t=t, p=draw(st.sampled_from(["61837.63", "61837.64", "70000.1", "0", "5"])),
                                 m=draw(st.sampled_from(["true", "false"])),
                                 sym=draw(st.sampled_from([None, None, "ETHUSDT", "ethusdt"]))))
        elif what == "quote":
            bid = draw(st.sampled_from(["61837.63", "61837.65", "70000.1", "0", "-1"]))
            fr = bytearray(('{"stream":"btcusdt@bookTicker","data":{"u":%d,"s":"BTCUSDT","b":"%s",'
                            '"B":"1.5","a":"61837.64","A":"2"}}' % (t + 7, bid)).encode())
        else:
            fr = bytearray(b'{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT",'
                           b'"U":1,"u":2,"b":[["1.0","2.0"]],"a":[]}}')
        if draw(st.integers(0, 4)) == 0:
            for _ in range(draw(st.integers(1, 3))):
                op = draw(st.sampled_from(["flip", "delete", "insert"]))
                j = draw(st.integers(0, len(fr) - 1))
                if op == "flip":
                    fr[j] = draw(st.integers(0, 255))
                elif op == "delete":
                    del fr[j:j + draw(st.integers(1, 6))]
                else:
                    fr[j:j] = draw(st.sampled_from([b'"', b",", b"}", b" ", b"\\", b"0", b"e9", b"\xff", b"null"]))
        frames.append((1_723_161_255_342_000_000 + i, bytes(fr)))
    return frames


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=mutated_chunk(), chunk=st.sampled_from([1000, 7, 1]))
def test_fuzzed_chunks_match_reference(frames, chunk):
    assert_same(frames, chunks=(chunk,))


# --------------------------------------------------------------------------- symbols, state

def test_many_symbols_spellings_and_rules_firing_mid_chunk():
    rng = random.Random(3)
    syms = [f"SYM{i}USDT" for i in range(MAX_SYMBOLS + 4)]
    frames, t = [], {s: 100 for s in syms}
    for i in range(4000):
        s = rng.choice(syms[:3]) if rng.random() < 0.8 else rng.choice(syms)
        t[s] += 1
        price = "100.5" if rng.random() > 0.01 else rng.choice(["150.0", "0", "100.5"])
        tid = t[s] if rng.random() > 0.01 else t[s] - 10
        spelled = s if rng.random() < 0.7 else s.lower()
        frames.append((1_723_161_255_342_000_000 + i * 1000,
                       trade(t=tid, p=price, sym=spelled, T=1_723_161_255_342 + i // 10)))
    ref = assert_same(frames, chunks=(1000, 250, 31))
    assert ref[2]["rejected"] > 0 and ref[2]["flagged"] > 0


def test_receive_times_the_scan_cannot_take():
    frames = [trade(t=i) for i in range(1, 6)]
    for recv in ([True] * 5, [1.5] * 5, [2**70] * 5, [-(2**63)] * 5):
        enc = normalize_mod.normalize_encoded(list(zip(recv, frames)), BinanceAdapter(), None,
                                              normalize_mod.Summary())
        got = b"".join(lines for lines, _ in enc)
        want = b"".join(_enc.encode(t) + b"\n" for r, f in zip(recv, frames)
                        for t in BinanceAdapter().parse(f, r).ticks)
        assert got == want


def test_the_scan_turns_itself_off_when_msgspec_writes_otherwise(monkeypatch, caplog):
    """A different Tick encoding (a new msgspec, a changed Tick) fails the probe at
    start: the encoder says so and every frame takes the reference path."""
    import producers.fastpath.binance_encode as be

    monkeypatch.setattr(be, "_PROBED", {})
    real = be.tick_template
    monkeypatch.setattr(be, "tick_template", lambda venue_json: real(venue_json + b" "))
    enc = be.ChunkEncoder(BinanceAdapter(), None, normalize_mod.normalize_chunk)
    assert not enc.enabled and "disagrees with msgspec" in caplog.text
    frames = [trade(t=i) for i in range(1, 200)]
    got, dead = enc.encode_chunk(frames, list(range(199)), normalize_mod.Summary())
    assert enc.scanned == 0 and not dead
    assert got == b"".join(_enc.encode(BinanceAdapter().parse(f, r).ticks[0]) + b"\n"
                           for r, f in enumerate(frames))


def test_the_scan_is_on_and_takes_long_trade_runs():
    import producers.fastpath.binance_encode as be

    enc = be.ChunkEncoder(BinanceAdapter(), Validator(), normalize_mod.normalize_chunk)
    assert enc.enabled
    frames = [trade(t=i) for i in range(1, 200)]
    enc.encode_chunk(frames, [1_723_161_255_342_000_000 + i for i in range(199)], normalize_mod.Summary())
    assert enc.scanned == 199
