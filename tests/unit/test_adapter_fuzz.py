"""Fuzzing every adapter: mutated real frames and random frames.

Properties, for every adapter and every input:
- ``parse`` returns a ParseResult and never raises;
- the frame is accounted for exactly once: ticks, or a skip reason, or an error;
- every tick is a well-formed Tick (finite prices, int64 timestamps, canonical
  symbol) that encodes and decodes, and that the Validator accepts or rejects
  without raising.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.venues.base import ParseResult
from producers.recordings.readers import read_frames
from producers.validation import Validator
from producers.venues import get_adapter
from schemas.events import Tick

DATA = Path(__file__).resolve().parents[1] / "data"
VENUES = ("binance", "binance-usdm", "coinbase", "kraken")


def _sample(path: Path, per_kind: int = 6) -> list[bytes]:
    """A few frames of each shape (by leading bytes) from a recording."""
    seen: dict[bytes, int] = {}
    out = []
    for _, fr in read_frames(path, plain_clock="index"):
        key = fr[:28]
        if seen.get(key, 0) < per_kind:
            seen[key] = seen.get(key, 0) + 1
            out.append(fr)
    return out


def _seeds() -> dict[str, list[bytes]]:
    binance = _sample(DATA / "spot_btcusdt_20240808.ndjson.gz")[:40] + _sample(DATA / "BINANCE.ws.1.0")
    usdm = (DATA / "frames" / "binance_usdm.jsonl").read_bytes().splitlines()
    coinbase = _sample(DATA / "COINBASE.ws.28.0", 3) + (DATA / "frames" / "coinbase_advanced.jsonl").read_bytes().splitlines()
    kraken = (_sample(DATA / "KRAKEN.ws.48.0") + _sample(DATA / "KRAKEN.ws.49.0")
              + (DATA / "frames" / "kraken_v2.jsonl").read_bytes().splitlines())
    # keep big book frames short so mutations stay fast
    return {v: [f for f in fs if len(f) < 4000] for v, fs in
            {"binance": binance + usdm, "binance-usdm": usdm + binance[:20],
             "coinbase": coinbase, "kraken": kraken}.items()}


SEEDS = _seeds()
ALL_SEEDS = [f for fs in SEEDS.values() for f in fs]
ADAPTERS = {v: get_adapter(v) for v in VENUES}
ENC = msgspec.json.Encoder()
TICK_DEC = msgspec.json.Decoder(Tick)


def check(venue: str, frame, validator: Validator | None = None) -> ParseResult:
    r = ADAPTERS[venue].parse(frame, 1_700_000_000_000_000_000)
    assert isinstance(r, ParseResult)
    outcomes = [bool(r.ticks), r.skipped is not None, r.error is not None]
    assert sum(outcomes) == 1, (frame, r)
    if r.error is not None:
        assert isinstance(r.error, str) and r.error
        assert not r.error.startswith("internal:"), r.error  # an exception nobody named
    if r.skipped is not None:
        assert isinstance(r.skipped, str) and r.skipped
    for t in r.ticks:
        assert type(t) is Tick and t.venue == ADAPTERS[venue].name
        assert t.symbol and t.symbol.isalnum() and t.symbol == t.symbol.upper()
        assert 0 <= t.ts_event < 2**63 and type(t.ts_event) is int
        assert t.seq is None or (type(t.seq) is int and 0 <= t.seq < 2**63)
        for name in ("price", "size", "bid", "ask", "bid_size", "ask_size"):
            x = getattr(t, name)
            assert x is None or (type(x) is float and math.isfinite(x)), (name, x)
        if t.kind == "trade":
            assert t.price is not None and t.size is not None and t.side in ("buy", "sell")
        else:
            assert t.bid is not None and t.ask is not None
        assert TICK_DEC.decode(ENC.encode(t)) == t
        if validator is not None:
            validator.validate(t)
    return r


# --- mutations ---------------------------------------------------------------------

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-2**70, 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["nan", "inf", "-1", "0", "1e999", "", "BTC-USD", "1618678142.5", "2021-04-17T16:43:30Z",
                     "buy", "sell", "b", "s", "BUY", "MARKET", "ADL", "trade", "ticker", "match"]),
)
json_value = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)), max_leaves=10)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _set(obj, path, value, delete=False):
    if not path:
        return value
    parent = obj
    for p in path[:-1]:
        parent = parent[p]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return obj


@st.composite
def json_mutation(draw):
    frame = draw(st.sampled_from(ALL_SEEDS))
    obj = json.loads(frame)
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(obj))
        path = draw(st.sampled_from(paths))
        if path and draw(st.booleans()) and draw(st.booleans()):
            obj = _set(obj, path, None, delete=True)
        else:
            obj = _set(obj, path, draw(json_value))
    return json.dumps(obj).encode()


@st.composite
def byte_mutation(draw):
    frame = bytearray(draw(st.sampled_from(ALL_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate"]))
        i = draw(st.integers(0, max(len(frame) - 1, 0)))
        if op == "flip" and frame:
            frame[i] = draw(st.integers(0, 255))
        elif op == "delete" and frame:
            del frame[i:i + draw(st.integers(1, 8))]
        elif op == "insert":
            frame[i:i] = draw(st.sampled_from([b'"', b",", b"}", b"]", b"{", b"-", b"0", b"e9", b"\xff", b"null"]))
        elif op == "truncate":
            del frame[i:]
    return bytes(frame)


FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("venue", VENUES)
def test_seed_frames_all_parse_cleanly(venue):
    for frame in SEEDS[venue]:
        check(venue, frame, Validator())


@pytest.mark.parametrize("venue", VENUES)
@FUZZ
@given(frame=json_mutation())
def test_json_mutations(venue, frame):
    check(venue, frame, Validator())


@pytest.mark.parametrize("venue", VENUES)
@FUZZ
@given(frame=byte_mutation())
def test_byte_mutations(venue, frame):
    check(venue, frame)


@pytest.mark.parametrize("venue", VENUES)
@settings(max_examples=150, deadline=None)
@given(frame=st.one_of(st.binary(max_size=200), st.text(max_size=200),
                       json_value.map(lambda v: json.dumps(v).encode())))
def test_random_frames(venue, frame):
    check(venue, frame)


def test_every_seed_frame_through_every_adapter():
    """Cross-venue frames (a Kraken array to Coinbase, ...) are errors or skips, never exceptions."""
    for venue in VENUES:
        for frame in ALL_SEEDS:
            check(venue, frame)


def test_non_frame_inputs():
    for venue in VENUES:
        for frame in (None, 5, 3.5, [b"x"], b"\x00" * 10, "\ud800", memoryview(b'{"a":1}')):
            r = check(venue, frame)
            assert r.error is not None


def test_deterministic_random_mutation_sweep():
    """A cheap, seeded sweep over many more mutations than hypothesis runs."""
    rng = random.Random(1234)
    for _ in range(4000):
        frame = bytearray(rng.choice(ALL_SEEDS))
        for _ in range(rng.randint(1, 3)):
            if frame:
                frame[rng.randrange(len(frame))] = rng.randrange(256)
        for venue in VENUES:
            check(venue, bytes(frame))


# --- parse_many (batch API) gives exactly what parse gives frame by frame -----------

def _parse_many_matches(venue_adapter, frames, ts):
    want_ticks, want_problems = [], []
    for i, fr in enumerate(frames):
        r = venue_adapter.parse(fr, ts[i])
        if r.ticks:
            want_ticks += r.ticks
        else:
            want_problems.append((i, r))
    problems: list = []
    got = venue_adapter.parse_many(frames, ts, problems)
    assert got == want_ticks
    assert [(i, r.skipped, r.error) for i, r in problems] == \
        [(i, r.skipped, r.error) for i, r in want_problems]
    # one receive time for the whole batch
    t0 = ts[0] if ts else 1
    same = venue_adapter.parse_many(frames, t0)
    assert all(t.ts_recv == t0 for t in same if t.kind == "trade")
    assert len(same) == len(got)


def test_parse_many_equals_parse_on_seeds_and_recording():
    ad = ADAPTERS["binance"]
    frames = SEEDS["binance"]
    _parse_many_matches(ad, frames, list(range(1, len(frames) + 1)))
    rec = [fr for _, fr in read_frames(DATA / "spot_btcusdt_20240808.ndjson.gz", plain_clock="index")][:3000]
    _parse_many_matches(ad, rec, [1_700_000_000_000_000_000 + i for i in range(len(rec))])
    assert ad.parse_many([], 1) == []


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.one_of(
    st.sampled_from([f for f in SEEDS["binance"] if b'@trade"' in f[:64]] or [b"{}"]),
    st.sampled_from(SEEDS["binance"]),
    st.binary(max_size=60),
    st.sampled_from([b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"nan",'
                     b'"q":"1","T":1,"m":true}}',
                     b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":-1,"p":"1",'
                     b'"q":"1","T":1,"m":true}}',
                     b'{"stream":"btcusdt@trade","data":{}},{"stream":"btcusdt@trade","data":{}}',
                     b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTC-USDT","t":1,"p":"1",'
                     b'"q":"1","T":1,"m":true}}',
                     '{"stream":"btcusdt@trade","data":{"e":"trade","s":"btcusdt","t":7,"p":"1.5",'
                     '"q":"2","T":3,"m":false}}']),
), max_size=12))
def test_parse_many_equals_parse_on_mixed_batches(frames):
    for venue in ("binance", "binance-usdm"):
        _parse_many_matches(ADAPTERS[venue], frames, list(range(10, 10 + len(frames))))


# --- parse_many's one-comprehension path (a batch of nothing but trade frames) ---------

def _trade_frame(sym: str, t: int, x: str | None, p: str = "61837.63000000") -> bytes:
    extra = "" if x is None else f',"X":"{x}"'
    return (f'{{"stream":"{sym.lower()}@trade","data":{{"e":"trade","E":1,"s":"{sym}","t":{t},'
            f'"p":"{p}","q":"0.02","T":1723161255342,"m":{"true" if t % 2 else "false"}{extra}}}}}').encode()


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(["BTCUSDT", "BTCUSDT", "ETHUSDT", "btcusdt", "BTC-USDT", ""]),
                          st.integers(0, 2**63 + 5),
                          st.sampled_from([None, None, "MARKET", "INSURANCE_FUND"]),
                          st.sampled_from(["61837.63", "1e3", "nan", "-0.5", "0"])),
                min_size=2, max_size=30),
       st.sampled_from(["list", "tuple", "one", "bytearray"]))
def test_parse_many_all_trade_batches(specs, ts_form):
    frames = [_trade_frame(*s) for s in specs]
    ts = list(range(100, 100 + len(frames)))
    if ts_form == "bytearray":
        frames = [bytearray(f) for f in frames]
    for venue in ("binance", "binance-usdm"):
        ad = ADAPTERS[venue]
        want = []
        for i, fr in enumerate(frames):
            want += ad.parse(fr, 7 if ts_form == "one" else ts[i]).ticks
        arg = 7 if ts_form == "one" else (tuple(ts) if ts_form == "tuple" else ts)
        assert ad.parse_many(frames, arg) == want
        _parse_many_matches(ad, frames, ts)


@pytest.mark.parametrize("venue", VENUES)
def test_invalid_utf8_in_a_string_is_a_named_dead_letter(venue):
    """msgspec raises UnicodeDecodeError (not DecodeError) for bad UTF-8 inside a
    string: every path must turn it into a parse error, the batch path too."""
    bad = []
    for frame in SEEDS[venue]:
        i = frame.find(b'"', frame.find(b":")) + 1
        if i > 0:
            bad.append(frame[:i] + b"\x80\xff" + frame[i:])
    assert bad
    for frame in bad:
        r = check(venue, frame)
        assert r.error is None or "UTF-8" in r.error or "utf-8" in r.error or not r.error.startswith("internal")
    adapter = ADAPTERS[venue]
    if hasattr(adapter, "parse_many"):
        frames = [f for f in SEEDS[venue] for _ in range(3)] + bad * 3
        problems: list = []
        ticks = adapter.parse_many(frames, [1] * len(frames), problems)
        want = [t for f in frames for t in adapter.parse(f, 1).ticks]
        assert ticks == want
