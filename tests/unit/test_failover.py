from producers.feed.failover import FAILOVER_FLAG, FailoverArbiter
from schemas.events import Tick


def tick(venue: str, symbol: str = "BTCUSDT", seq: int = 1) -> Tick:
    return Tick(symbol=symbol, venue=venue, kind="trade", ts_event=seq, ts_recv=seq,
                price=100.0, size=1.0, seq=seq)


def test_primary_published_fallback_suppressed_while_primary_live():
    arb = FailoverArbiter("binance", "coinbase", failover_after=5.0)
    assert arb.offer("binance", tick("binance"), 0.0).publish
    assert not arb.offer("coinbase", tick("coinbase"), 1.0).publish
    assert arb.offer("binance", tick("binance"), 4.0).publish
    assert not arb.offer("coinbase", tick("coinbase"), 8.9).publish  # primary silent 4.9 s
    assert arb.active("BTCUSDT") == "binance"
    assert arb.switches == []


def test_failover_after_silence_and_recovery():
    arb = FailoverArbiter("binance", "coinbase", failover_after=5.0)
    arb.offer("binance", tick("binance"), 0.0)
    d = arb.offer("coinbase", tick("coinbase"), 5.0)
    assert d.publish and d.switch is not None and d.switch.to == "fallback"
    assert d.switch.silent_for == 5.0
    assert d.tick.venue == "coinbase" and FAILOVER_FLAG in d.tick.flags
    # stays on the fallback, no new switch
    d2 = arb.offer("coinbase", tick("coinbase", seq=2), 6.0)
    assert d2.publish and d2.switch is None
    assert arb.active("BTCUSDT") == "coinbase"
    # primary recovers: its ticks are published again, fallback suppressed at once
    d3 = arb.offer("binance", tick("binance", seq=3), 7.0)
    assert d3.publish and d3.switch.to == "primary" and FAILOVER_FLAG not in d3.tick.flags
    assert not arb.offer("coinbase", tick("coinbase", seq=4), 7.5).publish
    assert [s.to for s in arb.switches] == ["fallback", "primary"]


def test_per_symbol_and_never_seen_primary_counts_from_start():
    arb = FailoverArbiter("binance", "coinbase", failover_after=2.0, start=100.0)
    arb.offer("binance", tick("binance", "BTCUSDT"), 100.5)
    # ETHUSDT never ticked on the primary: silence counts from the start
    assert not arb.offer("coinbase", tick("coinbase", "ETHUSDT"), 101.0).publish
    assert arb.offer("coinbase", tick("coinbase", "ETHUSDT"), 102.0).publish
    # BTCUSDT is unaffected
    assert not arb.offer("coinbase", tick("coinbase", "BTCUSDT"), 102.0).publish
    assert arb.active("ETHUSDT") == "coinbase" and arb.active("BTCUSDT") == "binance"


def test_symbol_map_between_venues():
    arb = FailoverArbiter("binance", "coinbase", failover_after=1.0, symbol_map={"BTCUSD": "BTCUSDT"})
    arb.offer("binance", tick("binance", "BTCUSDT"), 0.0)
    assert not arb.offer("coinbase", tick("coinbase", "BTCUSD"), 0.5).publish
    d = arb.offer("coinbase", tick("coinbase", "BTCUSD"), 1.5)
    assert d.publish and d.tick.symbol == "BTCUSD" and d.switch.symbol == "BTCUSDT"
    assert arb.offer("binance", tick("binance", "BTCUSDT"), 2.0).switch.to == "primary"


# -- integration: two simulator feeds, one arbiter -------------------------------------
import asyncio  # noqa: E402

from producers.venues.binance import BinanceAdapter  # noqa: E402
from producers.feed.connection import FeedConnection, FeedSettings  # noqa: E402
from producers.feed.failover import FailoverFeed  # noqa: E402
from producers.simulator.server import SimConfig, SimulatorServer  # noqa: E402
from streaming import codec  # noqa: E402
from tests.helpers import memory_bus, wait_for as _wait  # noqa: E402, F401 - memory_bus is the bus fixture


class AltBinance(BinanceAdapter):
    name = "binance-alt"


async def test_failover_feed_switches_to_fallback_and_back(bus):
    settings = FeedSettings(silence_timeout=30.0, backoff_initial=0.05, seed=1)
    async with SimulatorServer(SimConfig(symbols=["BTCUSDT"], seed=1, rate=300.0)) as prim, \
            SimulatorServer(SimConfig(symbols=["BTCUSDT"], seed=2, rate=300.0)) as fall:
        primary = FeedConnection(BinanceAdapter(), bus, ["BTCUSDT"], url=prim.url, settings=settings)
        fallback = FeedConnection(AltBinance(), bus, ["BTCUSDT"], url=fall.url, settings=settings)
        arb = FailoverArbiter("binance", "binance-alt", failover_after=0.3)
        feed = FailoverFeed(primary, fallback, arb, bus)
        task = asyncio.create_task(feed.run())
        await _wait(lambda: feed.published["binance"] >= 30 and fallback.stats.ticks >= 30)
        assert feed.published["binance-alt"] == 0
        prim.pause()  # primary goes quiet, its socket stays open
        await _wait(lambda: feed.published["binance-alt"] >= 30)
        assert arb.active("BTCUSDT") == "binance-alt"
        prim.resume()
        await _wait(lambda: arb.active("BTCUSDT") == "binance")
        n = feed.published["binance"]
        await _wait(lambda: feed.published["binance"] >= n + 20)
        await feed.stop()
        assert await asyncio.wait_for(task, 5) is True

    ticks = [codec.decode("ticks.v1", r.value) for r in await bus.read_all("ticks.v1")]
    venues = [t.venue for t in ticks]
    assert venues.count("binance-alt") == feed.published["binance-alt"]
    assert all(FAILOVER_FLAG in t.flags for t in ticks if t.venue == "binance-alt")
    assert all(FAILOVER_FLAG not in t.flags for t in ticks if t.venue == "binance")
    alerts = [codec.decode("alerts.v1", r.value) for r in await bus.read_all("alerts.v1")]
    assert [a.type for a in alerts if a.type.startswith("failover")] == ["failover", "failover_recovered"]
    # the primary's trades sent while paused were lost: reported as a gap
    assert any(a.type == "sequence_gap" and a.source == "producer:binance" for a in alerts)
