"""FeaturesProcessor: batch-size invariance, exact snapshot/restore, many symbols."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from pathlib import Path

import msgspec
import numpy as np
import pytest

from consumers.features.processor import FeaturesProcessor
from schemas.events import Bar, FeatureVector, Tick
from streaming.kernels.config import FeatureConfig
from streaming.kernels.engine import compute
from streaming.processor import Envelope

DATA = Path(__file__).resolve().parents[1] / "data"
PARTITIONS = 4
SYMBOLS = [f"SYM{i}" for i in range(23)] + ["BTCUSDT"]


def clock():
    return 42


def _part(symbol: str) -> int:
    return zlib.crc32(symbol.encode()) % PARTITIONS


@pytest.fixture(scope="module")
def stream() -> list[Envelope]:
    """BTCUSDT trades and book tickers, replayed as 24 interleaved symbols at different levels."""
    events = []
    with gzip.open(DATA / "spot_btcusdt_20240808.ndjson.gz", "rt") as f:
        for line in f:
            ns, frame = line.split(" ", 1)
            if '"btcusdt@trade"' in frame:
                d = json.loads(frame)["data"]
                events.append(("trade", int(ns), float(d["p"]), float(d["q"])))
            elif '"btcusdt@bookTicker"' in frame:
                d = json.loads(frame)["data"]
                events.append(("quote", int(ns), float(d["b"]), float(d["a"])))
            if len(events) >= 6000:
                break
    rng = np.random.default_rng(11)
    offsets = {p: 0 for p in range(PARTITIONS)}
    out = []
    for i, (kind, ns, a, b) in enumerate(events):
        sym = SYMBOLS[int(rng.integers(len(SYMBOLS)))]
        scale = 1.0 + SYMBOLS.index(sym) / 7
        if kind == "trade":
            ev = Tick(symbol=sym, venue="binance", kind="trade", ts_event=ns, ts_recv=ns + 5,
                      price=a * scale, size=b, trade_id=str(i))
        else:
            ev = Tick(symbol=sym, venue="binance", kind="quote", ts_event=ns, ts_recv=ns + 5,
                      bid=a * scale, ask=b * scale)
        p = _part(sym)
        out.append(Envelope("ticks.v1", p, offsets[p], sym.encode(), ev))
        offsets[p] += 1
    return out


def run(proc: FeaturesProcessor, envs, batch: int) -> list[bytes]:
    out = []
    for lo in range(0, len(envs), batch):
        res = proc.process(envs[lo:lo + batch])
        assert not res.rejected
        out += [msgspec.json.encode(o.event) for o in res.outputs]
    return out


def test_batch_size_invariance(stream):
    one = run(FeaturesProcessor(clock=clock, emit_quotes=True), stream, 1)
    big = run(FeaturesProcessor(clock=clock, emit_quotes=True), stream, 1000)
    odd = run(FeaturesProcessor(clock=clock, emit_quotes=True), stream, 337)
    assert len(one) == len(stream)
    assert one == big == odd


def test_outputs_match_the_kernels_per_symbol(stream):
    proc = FeaturesProcessor(clock=clock)
    res = proc.process(stream)
    fvs = [o.event for o in res.outputs]
    assert all(o.topic == "features.v1" and o.key == o.event.symbol.encode() for o in res.outputs)
    for sym in ("SYM3", "BTCUSDT"):
        trades = [e.event for e in stream if e.event.symbol == sym and e.event.kind == "trade"]
        mine = [f for f in fvs if f.symbol == sym]
        assert [f.seq for f in mine] == list(range(1, len(trades) + 1))
        assert [f.price for f in mine] == [t.price for t in trades]
        ref = compute([t.price for t in trades], [t.size for t in trades])
        names = proc.names
        got = np.array([[np.nan if f.values[n] is None else f.values[n] for n in names] for f in mine])
        no_quote = [i for i, n in enumerate(names) if n not in ("mid", "spread")]
        np.testing.assert_array_equal(got[:, no_quote], ref[:, no_quote])
        assert mine[-1].values["mid"] is not None  # quotes were folded in
        assert mine[0].ts_proc == 42 and mine[0].source == "tick"


@pytest.mark.parametrize("cut", [1, 2500, 4999])
def test_snapshot_restore_continues_identically(stream, cut):
    whole = run(FeaturesProcessor(clock=clock, emit_every=3), stream, 500)
    a = FeaturesProcessor(clock=clock, emit_every=3)
    first = run(a, stream[:cut], 500)
    snaps = {p: a.snapshot(p) for p in range(PARTITIONS)}
    assert all(isinstance(s, bytes) for s in snaps.values() if s is not None)
    b = FeaturesProcessor(clock=clock, emit_every=3)
    for p, s in snaps.items():
        if s is not None:
            b.restore(p, s)
            assert b.next_offsets(p) == a.next_offsets(p)
    second = run(b, stream[cut:], 500)
    assert first + second == whole


def test_rebalance_moves_partition_state(stream):
    whole = FeaturesProcessor(clock=clock)
    ref = run(whole, stream, 1000)
    half = len(stream) // 2
    a, b = FeaturesProcessor(clock=clock), FeaturesProcessor(clock=clock)
    out = run(a, stream[:half], 1000)
    # partition 1 moves from a to b
    b.restore(1, a.snapshot(1))
    a.drop(1)
    assert all(k not in a.engine.keys() for k in b.engine.keys())
    rest = stream[half:]
    out_a = run(a, [e for e in rest if e.partition != 1], 1000)
    out_b = run(b, [e for e in rest if e.partition == 1], 1000)
    got = sorted(out + out_a + out_b)
    assert got == sorted(ref)


def test_emit_every_bars_quotes_and_rejections():
    proc = FeaturesProcessor(clock=clock, emit_every=2)
    envs = []
    for i in range(6):
        envs.append(Envelope("ticks.v1", 0, i, b"X", Tick(symbol="X", venue="v", kind="trade", ts_event=i,
                                                          ts_recv=i, price=100.0 + i, size=1.0)))
    envs.append(Envelope("ticks.v1", 0, 6, b"X", Tick(symbol="X", venue="v", kind="quote", ts_event=7,
                                                      ts_recv=7, bid=99.0, ask=101.0)))
    envs.append(Envelope("ticks.v1", 0, 7, b"X", Tick(symbol="X", venue="v", kind="trade", ts_event=8,
                                                      ts_recv=8, price=-1.0, size=1.0)))
    envs.append(Envelope("ticks.v1", 0, 8, b"X", Tick(symbol="X", venue="v", kind="quote", ts_event=9,
                                                      ts_recv=9, bid=None, ask=101.0)))
    for i in range(3):
        envs.append(Envelope("bars.v1", 0, i, b"X", Bar(symbol="X", ts_event=100 + i, open=1, high=1, low=1,
                                                        close=10.0 + i, volume=5.0, ts_ingest=3)))
    res = proc.process(envs)
    ticks = [o.event for o in res.outputs if o.event.source == "tick"]
    bars = [o.event for o in res.outputs if o.event.source == "bar"]
    assert [f.seq for f in ticks] == [2, 4, 6]
    assert [f.seq for f in bars] == [1, 2, 3]  # bars are a separate state from ticks
    assert bars[0].values["return_1"] is None and bars[1].values["return_1"] == pytest.approx(0.1)
    assert bars[0].ts_ingest == 3
    assert len(res.rejected) == 2 and "price" in res.rejected[0][1]
    assert proc.next_offsets(0) == {"ticks.v1": 9, "bars.v1": 3}
    q = FeaturesProcessor(clock=clock, emit_quotes=True)
    fv = q.process(envs[:7]).outputs[-1].event
    assert isinstance(fv, FeatureVector) and fv.values["mid"] == 100.0 and fv.values["spread"] == 2.0
    assert fv.seq == 6 and fv.price == 100.0


def test_restore_rejects_other_config():
    a = FeaturesProcessor()
    a.process([Envelope("ticks.v1", 0, 0, b"X", Tick(symbol="X", venue="v", kind="trade", ts_event=1,
                                                     ts_recv=1, price=1.0, size=1.0))])
    b = FeaturesProcessor(FeatureConfig(return_periods=(1,)))
    with pytest.raises(ValueError):
        b.restore(0, a.snapshot(0))
    assert a.snapshot(3) is None
    assert a.state_bytes() <= 4096


def test_many_symbols_grow():
    proc = FeaturesProcessor(clock=clock, capacity=1)
    envs = [Envelope("ticks.v1", i % 3, i, None, Tick(symbol=f"S{i % 2000}", venue="v", kind="trade",
                                                      ts_event=i, ts_recv=i, price=100.0 + (i % 7), size=1.0))
            for i in range(10000)]
    res = proc.process(envs)
    assert len(res.outputs) == 10000 and len(proc.engine) == 2000
    assert res.outputs[-1].event.seq == 5


def test_restore_refuses_a_snapshot_of_the_old_state_layout():
    """Layout 1 (all-float state rows) snapshots carried the bare config JSON as fingerprint."""
    a = FeaturesProcessor()
    a.process([Envelope("ticks.v1", 0, 0, b"X", Tick(symbol="X", venue="v", kind="trade", ts_event=1,
                                                     ts_recv=1, price=1.0, size=1.0))])
    snap = msgspec.msgpack.decode(a.snapshot(0))
    assert snap["config"].startswith("layout")
    snap["config"] = msgspec.json.encode(FeatureConfig()).decode()  # what layout 1 wrote
    b = FeaturesProcessor()
    with pytest.raises(ValueError, match="state layout1, this version reads layout3"):
        b.restore(0, msgspec.msgpack.encode(snap))
    b.restore(0, a.snapshot(0))  # the current layout is accepted


def test_restore_refuses_a_changelog_item_of_layout_2_with_what_to_do():
    """Layout 2 seeded the EMAs with the first price: its rows cannot become TA-Lib's values."""
    from consumers.features.processor import ItemState, SNAPSHOT_VERSION

    a = FeaturesProcessor()
    a.process([Envelope("bars.v1", 0, 0, b"X", Bar(symbol="X", interval="1d", ts_event=1, open=1.0, high=1.0,
                                                    low=1.0, close=1.0, volume=1.0))])
    [(key, data)] = a.dirty_items(0).items()
    item = msgspec.msgpack.decode(data, type=ItemState)
    old = ItemState(SNAPSHOT_VERSION, item.config.replace("layout3:", "layout2:", 1), item.width, item.state)
    b = FeaturesProcessor()
    with pytest.raises(ValueError, match="layout2.*delete the group's features changelog"):
        b.restore_item(0, key, msgspec.msgpack.encode(old))
    b.restore_item(0, key, data)
    assert b.engine.count(b.engine.row_of(("bar", "X", "1d"))) == 1


async def test_a_consumer_restarted_on_a_layout_2_changelog_stops_with_the_reason():
    """The runner refuses to run on state it cannot read (the error names the layouts and the fix)."""
    from consumers.features.processor import ItemState, SNAPSHOT_VERSION
    from schemas.topics import changelog_topic
    from streaming.bus.memory import MemoryBus
    from streaming.changelog import Snapshot
    from streaming.codec import encode as encode_event
    from streaming.runner import Runner, RunnerSettings

    bus = MemoryBus("memory://features-layout2")
    b = Bar(symbol="X", interval="1d", ts_event=1, open=1.0, high=1.0, low=1.0, close=1.0, volume=1.0)
    await bus.publish("bars.v1", b"X", encode_event(b))
    width = FeaturesProcessor().engine.layout.width
    old = ItemState(SNAPSHOT_VERSION, FeatureConfig().fingerprint().replace("layout3:", "layout2:", 1), width,
                    bytes(8 * width))
    for p in range(6):  # whichever partition bars.v1's X is on
        snap = Snapshot(partition=p, offsets={"bars.v1": 0}, state=msgspec.msgpack.encode(old), item="bar|X|1d")
        await bus.publish(changelog_topic("features").name, f"{p}/bar|X|1d".encode(), msgspec.json.encode(snap))
    proc = FeaturesProcessor()
    with pytest.raises(RuntimeError) as err:
        await asyncio.wait_for(Runner(proc, bus, RunnerSettings(duration_s=2.0, poll_timeout_ms=20)).run(), 10)
    assert "layout2" in str(err.value.__cause__) and "changelog.<group>.features.v2" in str(err.value.__cause__)
