"""docs/extending.md's example consumer, run as the docs say (`ticktide consume --processor
module:Class`), on the real broker: large trades in, big_trade alerts out."""

from __future__ import annotations

import time

import msgspec
import pytest

from schemas.events import Alert, Tick
from streaming import codec
from streaming.bus.kafka import KafkaBus
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.kafka


def trade(n: int, price: float, size: float) -> Tick:
    now = time.time_ns()
    return Tick(symbol="BTCUSDT", venue="binance", kind="trade", ts_event=now, ts_recv=now, price=price,
                size=size, side="buy", trade_id=str(n), seq=n)


async def test_the_example_processor_runs_with_consume_processor(kafka_url, processes, tmp_path):
    bus = KafkaBus(kafka_url)
    await bus.ensure_topics(["ticks.v1", "alerts.v1", "dlq.v1", "health.v1"])
    config = tmp_path / "big_trades.toml"
    config.write_text("min_notional = 50000.0\n")
    proc = processes.start("consume", "--processor", "examples.processors.big_trades:BigTrades",
                           "--config", str(config), "--bus", kafka_url, name="big-trades")
    ticks = [trade(1, 60_000.0, 0.1), trade(2, 60_000.0, 1.5), trade(3, 3_000.0, 20.0), trade(4, 10.0, 1.0)]
    await bus.start()
    try:
        for t in ticks:
            await bus.publish("ticks.v1", codec.key_for("ticks.v1", t), codec.encode(t))
        await bus.flush()

        async def alerts():
            records = await bus.read_all("alerts.v1", timeout_s=5)
            found = [msgspec.json.decode(r.value, type=Alert) for r in records]
            return found if len(found) >= 2 else None

        found = await wait_until(alerts, 90, what=f"big_trade alerts; log:\n{processes.log(proc)[-2000:]}")
    finally:
        await bus.close()
    assert sorted((a.type, a.symbol, a.details["notional"]) for a in found) == [
        ("big_trade", "BTCUSDT", 60_000.0), ("big_trade", "BTCUSDT", 90_000.0)]
    assert processes.stop(proc) == 0
