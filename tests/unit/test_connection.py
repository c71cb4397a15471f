"""The connection manager against the real simulator server on 127.0.0.1."""

import asyncio
import json
import socket

from producers.venues.binance import BinanceAdapter
from producers.feed.connection import FeedConnection, FeedSettings
from producers.simulator.server import SimConfig, SimulatorServer
from streaming import codec
from streaming.bus import reset_memory_buses
from tests.helpers import memory_bus, wait_for  # noqa: F401 - memory_bus is the bus fixture


class SubscribingBinance(BinanceAdapter):
    """Binance, but subscribing by message instead of by URL (exercises resubscribe)."""

    def url_for(self, symbols, base_url=None):
        return f"{base_url.rstrip('/')}/stream"

    def subscribe_messages(self, symbols):
        return [json.dumps({"method": "SUBSCRIBE", "id": 1,
                            "params": [f"{s.lower()}@{k}" for s in symbols for k in ("trade", "bookTicker")]})]


def fast_settings(**kw) -> FeedSettings:
    base = dict(silence_timeout=2.0, backoff_initial=0.05, backoff_max=0.2, backoff_jitter=0.2, seed=1,
                open_timeout=2.0, close_timeout=0.5, quality_interval=0.2)
    base.update(kw)
    return FeedSettings(**base)


async def decoded(bus, topic):
    return [codec.decode(topic, r.value) for r in await bus.read_all(topic)]


async def start_feed(feed):
    task = asyncio.create_task(feed.run())
    await wait_for(lambda: feed.stats.connects >= 1, what="first connect")
    return task


async def stop_feed(feed, task):
    await feed.stop()
    assert await asyncio.wait_for(task, 5) is True


def assert_trade_seqs_strictly_increasing(ticks):
    last: dict[str, int] = {}
    for t in ticks:
        if t.kind == "trade":
            assert t.seq > last.get(t.symbol, -1), f"duplicate or out of order {t.symbol} {t.seq}"
            last[t.symbol] = t.seq


async def test_reconnect_resubscribe_and_gap_reporting(bus):
    cfg = SimConfig(symbols=["BTCUSDT", "ETHUSDT"], seed=21, rate=300.0)
    async with SimulatorServer(cfg, port=0) as sim:
        feed = FeedConnection(SubscribingBinance(), bus, ["BTCUSDT", "ETHUSDT"], url=sim.url,
                              settings=fast_settings())
        task = await start_feed(feed)
        await wait_for(lambda: feed.stats.ticks >= 40)
        assert sim.subscribe_requests == 1 and feed.stats.gaps == 0
        assert feed.stats.skip_reasons.get("ack") == 1  # the SUBSCRIBE answer

        # the server kills the connection mid-stream; the market keeps trading meanwhile
        assert await sim.drop_connections() == 1
        await wait_for(lambda: feed.stats.connects == 2)
        await wait_for(lambda: sim.subscribe_requests == 2)  # resubscribed on the new socket
        assert feed.stats.reconnects == 1
        before = feed.stats.ticks
        await wait_for(lambda: feed.stats.ticks >= before + 40)
        assert feed.stats.gaps >= 1  # trades missed while reconnecting

        # an explicit hole in the trade ids is reported exactly
        gaps, missing = feed.stats.gaps, feed.stats.missing
        sim.skip_trade_ids("BTCUSDT", 7)
        await wait_for(lambda: feed.stats.gaps == gaps + 1)
        assert feed.stats.missing == missing + 7
        await stop_feed(feed, task)

    ticks = await decoded(bus, "ticks.v1")
    assert len(ticks) == feed.stats.ticks
    assert {t.symbol for t in ticks} == {"BTCUSDT", "ETHUSDT"}
    assert_trade_seqs_strictly_increasing(ticks)
    keys = {r.key for r in await bus.read_all("ticks.v1")}
    assert keys == {b"BTCUSDT", b"ETHUSDT"}
    alerts = [a for a in await decoded(bus, "alerts.v1") if a.type == "sequence_gap"]
    assert len(alerts) == feed.stats.gaps
    last = alerts[-1]
    assert last.symbol == "BTCUSDT" and last.details["missing"] == 7 and last.source == "producer:binance"
    assert await decoded(bus, "dlq.v1") == []


async def test_duplicates_across_reconnect_are_dropped(bus):
    cfg = SimConfig(symbols=["BTCUSDT"], seed=4, rate=200.0)
    # the server resends its last 40 frames to every new connection
    async with SimulatorServer(cfg, port=0, replay_on_connect=40) as sim:
        feed = FeedConnection(BinanceAdapter(), bus, ["BTCUSDT"], url=sim.url, settings=fast_settings())
        task = await start_feed(feed)
        await wait_for(lambda: feed.stats.ticks >= 60)
        await sim.drop_connections()
        await wait_for(lambda: feed.stats.connects == 2)
        await wait_for(lambda: feed.stats.duplicates > 0)
        before = feed.stats.ticks
        await wait_for(lambda: feed.stats.ticks >= before + 20)
        await stop_feed(feed, task)
    ticks = await decoded(bus, "ticks.v1")
    assert_trade_seqs_strictly_increasing(ticks)
    quotes = [t.seq for t in ticks if t.kind == "quote"]
    assert quotes == sorted(set(quotes))
    assert feed.stats.duplicates > 0
    assert len(ticks) == feed.stats.ticks == feed.stats.frames - feed.stats.duplicates


async def test_garbage_frame_goes_to_dlq_and_stream_continues(bus):
    cfg = SimConfig(symbols=["BTCUSDT"], seed=9, rate=200.0)
    async with SimulatorServer(cfg, port=0) as sim:
        feed = FeedConnection(BinanceAdapter(), bus, ["BTCUSDT"], url=sim.url, settings=fast_settings())
        task = await start_feed(feed)
        await wait_for(lambda: feed.stats.ticks >= 10)
        await sim.inject(b"\x00\xffnot json at all")
        await sim.inject('{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT","t":"x"}}')
        await wait_for(lambda: feed.stats.dead_letters == 2)
        before = feed.stats.ticks
        await wait_for(lambda: feed.stats.ticks >= before + 10)  # still streaming, same socket
        assert feed.stats.connects == 1
        await stop_feed(feed, task)
    dead = await decoded(bus, "dlq.v1")
    assert [d.raw[:4] for d in dead] == [b"\x00\xffno", b'{"st']
    assert all(d.stage == "producer:binance" and d.venue == "binance" and d.reason for d in dead)


async def test_silence_watchdog_reconnects_and_alerts(bus):
    cfg = SimConfig(symbols=["BTCUSDT"], seed=2, rate=200.0)
    async with SimulatorServer(cfg, port=0) as sim:
        feed = FeedConnection(BinanceAdapter(), bus, ["BTCUSDT"], url=sim.url,
                              settings=fast_settings(silence_timeout=0.3))
        task = await start_feed(feed)
        await wait_for(lambda: feed.stats.ticks >= 10)
        sim.pause()  # connection open, nothing sent
        await wait_for(lambda: feed.stats.silences >= 1)
        sim.resume()
        await wait_for(lambda: feed.stats.connects >= 2)
        before = feed.stats.ticks
        await wait_for(lambda: feed.stats.ticks >= before + 10)
        await stop_feed(feed, task)
    stale = [a for a in await decoded(bus, "alerts.v1") if a.type == "stale_feed"]
    assert len(stale) == feed.stats.silences


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_server_down_then_back_on_same_port_with_backoff(bus):
    port = free_port()
    cfg = SimConfig(symbols=["ETHUSDT"], seed=6, rate=200.0)
    sim = await SimulatorServer(cfg, port=port).start()
    feed = FeedConnection(BinanceAdapter(), bus, ["ETHUSDT"], url=sim.url, settings=fast_settings())
    task = await start_feed(feed)
    try:
        await wait_for(lambda: feed.stats.ticks >= 10)
        await sim.stop_listening()  # server gone: connection refused for a while
        await wait_for(lambda: feed.stats.reconnects >= 3)  # several failed attempts, backing off
        assert feed.stats.connects == 1
        await sim.start()  # same port, market kept running
        await wait_for(lambda: feed.stats.connects == 2)
        before = feed.stats.ticks
        await wait_for(lambda: feed.stats.ticks >= before + 10)
        assert feed.stats.gaps >= 1
        await stop_feed(feed, task)
    finally:
        await sim.close()


async def test_gives_up_after_max_attempts(bus):
    port = free_port()
    feed = FeedConnection(BinanceAdapter(), bus, ["BTCUSDT"], url=f"ws://127.0.0.1:{port}",
                          settings=fast_settings(max_attempts=2))
    assert await asyncio.wait_for(feed.run(), 5) is False
    assert feed.stats.connects == 0 and feed.stats.reconnects == 2


class FakeValidator:
    """Stands in for producers.validation.Validator: rejects non-positive sizes."""

    def __init__(self):
        self.seen = 0
        self.bad = 0

    def validate(self, tick):
        self.seen += 1
        if tick.kind == "trade" and tick.size > 0.05:
            self.bad += 1
            return None, "size above test limit"
        return tick, None

    def quality(self):
        return {"BTCUSDT": {"completeness": 1.0, "validity": 1 - self.bad / max(self.seen, 1)}}


async def test_validator_rejections_dead_lettered_and_quality_alert(bus):
    cfg = SimConfig(symbols=["BTCUSDT"], seed=3, rate=300.0)
    async with SimulatorServer(cfg, port=0) as sim:
        feed = FeedConnection(BinanceAdapter(), bus, ["BTCUSDT"], url=sim.url, validator=FakeValidator(),
                              settings=fast_settings(validity_threshold=0.99))
        task = await start_feed(feed)
        await wait_for(lambda: feed.stats.rejected >= 3 and feed.stats.ticks >= 20)
        await wait_for(lambda: feed.stats.alerts >= 1)
        await stop_feed(feed, task)
    dead = await decoded(bus, "dlq.v1")
    assert len(dead) == feed.stats.rejected
    assert all(d.reason.startswith("validation:") and d.key == "BTCUSDT" for d in dead)
    quality = [a for a in await decoded(bus, "alerts.v1") if a.type == "quality"]
    assert len(quality) == 1 and quality[0].details["metric"] == "validity"
    assert all(t.size <= 0.05 for t in await decoded(bus, "ticks.v1") if t.kind == "trade")


async def test_real_validator_quality_gauges(bus):
    from prometheus_client import REGISTRY

    from producers.validation import Validator

    cfg = SimConfig(symbols=["BTCUSDT", "ETHUSDT"], seed=8, rate=400.0)
    async with SimulatorServer(cfg, port=0) as sim:
        feed = FeedConnection(BinanceAdapter(), bus, ["BTCUSDT", "ETHUSDT"], url=sim.url,
                              validator=Validator(), settings=fast_settings())
        task = await start_feed(feed)
        await wait_for(lambda: feed.stats.ticks >= 300)
        await stop_feed(feed, task)  # run() exports quality on the way out
    assert feed.stats.rejected == 0 and feed.stats.dead_letters == 0
    for sym in ("BTCUSDT", "ETHUSDT"):
        assert REGISTRY.get_sample_value("ticktide_quality_completeness", {"symbol": sym}) == 1.0
        assert REGISTRY.get_sample_value("ticktide_quality_validity", {"symbol": sym}) == 1.0
        assert REGISTRY.get_sample_value("ticktide_feed_last_tick_timestamp_seconds",
                                         {"venue": "binance", "symbol": sym}) > 1.6e9
    assert not [a for a in await decoded(bus, "alerts.v1") if a.type == "quality"]


# -- replay: a recorded session through the same live path -------------------------------
from pathlib import Path  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data"
HFT = DATA / "spot_btcusdt_20240808.ndjson.gz"


async def test_replay_recording_through_adapter_with_recorded_times(bus):
    from producers.recordings.readers import read_frames
    from producers.recordings.replay import replay_into_bus

    n = 3000
    feed = await replay_into_bus(HFT, "binance", bus, speed=0, recv_time="recorded", max_frames=n)
    expected = []
    adapter = BinanceAdapter()
    for i, (ts, frame) in enumerate(read_frames(HFT)):
        if i == n:
            break
        expected.extend(adapter.parse(frame, ts).ticks)
    ticks = await decoded(bus, "ticks.v1")
    assert feed.stats.frames == n and feed.stats.dead_letters == 0
    assert len(ticks) == len(expected) > 2000
    # keyed per symbol, one partition: the order of the recording is kept, and so are its times
    assert [(t.seq, t.ts_recv, t.ts_event, t.price, t.bid) for t in ticks] == \
        [(t.seq, t.ts_recv, t.ts_event, t.price, t.bid) for t in expected]
    assert feed.stats.skip_reasons.get("book", 0) > 0


async def test_replay_paces_by_recorded_time(tmp_path, bus):
    from producers.recordings.replay import replay_into_bus

    frames = [
        '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":%d,"p":"1.0",'
        '"q":"1.0","T":1,"m":true,"M":true}}' % i for i in range(1, 5)
    ]
    base = 1_723_161_253_000_000_000
    path = tmp_path / "rec.txt"
    path.write_text("".join(f"{base + i * 200_000_000} {f}\n" for i, f in enumerate(frames)))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    feed = await replay_into_bus(path, "binance", bus, speed=2.0)
    elapsed = loop.time() - t0
    assert feed.stats.ticks == 4
    assert 0.28 <= elapsed < 2.0  # 0.6 s recorded / speed 2


def test_cli_replay_and_registration(capsys):
    import argparse

    from producers.live_commands import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    for argv in (["simulator"], ["produce", "--venue", "binance", "--symbols", "BTCUSDT"],
                 ["replay", "f", "--venue", "binance", "--speed", "max"]):
        assert callable(parser.parse_args(argv).func)
    reset_memory_buses()
    args = parser.parse_args(["replay", str(DATA / "BINANCE.ws.1.0"), "--venue", "binance",
                              "--speed", "max", "--bus", "memory://"])
    assert args.func(args) == 0
    err = capsys.readouterr().err
    assert "replay binance: frames=265 ticks=86" in err
    reset_memory_buses()
