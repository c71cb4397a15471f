"""Issue 5's done criterion on the real broker, every consumer its own OS process:

"A breached limit produces exactly one alert per cooldown and exactly one
webhook delivery, even when the webhook first fails twice." Since issue 16 (hysteresis) the
limit alerts once per breach episode, however long it lasts, and once more when it clears
(``limit_resolved``), each delivered once.

fills.v1 + ticks.v1 -> `ticktide consume risk` -> alerts.v1 -> `ticktide consume alerts` -> a real local
HTTP webhook that answers 500 twice, then 200. The memory-bus version of this is
tests/unit/test_alerts.py::test_breached_limit_gives_one_alert_and_one_delivery_though_the_webhook_fails_twice.

"Exactly" is checked at barriers, not after sleeps: a consumer group has handled every input
once its committed offsets reach the inputs' end offsets (the runner commits only after every
output of the batch is acknowledged), and a stopped alerts consumer has finished every delivery
(SIGTERM drains the dispatcher before exit).
"""

from __future__ import annotations

import time

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition as KafkaTP

from schemas.events import Alert, Fill, RiskUpdate, Tick
from streaming.bus.kafka import KafkaBus
from streaming.codec import encode, key_for
from tests.integration.conftest import wait_until
from tests.helpers import FlakyWebhook

pytestmark = pytest.mark.kafka

S = 1_000_000_000
MIN = 60 * S
T0 = 1_700_006_400 * S  # 2023-11-15 00:00 UTC: no daily equity sample closes during the test
SYMBOL = "AAA"
PORTFOLIO = "p1"
PHASE1_MINUTES = range(1, 11)  # ticks 1..10 min after the fill
PHASE2_MINUTES = range(61, 66)  # 61..65 min: past the old one-hour cooldown, still the same episode
PHASE3_MINUTES = range(70, 73)  # the price falls to 20: the position is back below the limit


async def _caught_up(bus: KafkaBus, group: str, topics: list[str]) -> bool:
    """True when ``group`` has committed every record of ``topics`` (end offsets as of now)."""
    s = bus.settings
    consumer = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, enable_auto_commit=False, **s.security)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [KafkaTP(s.physical(t), p) for t in topics
               for p in sorted(consumer.partitions_for_topic(s.physical(t)) or ())]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    admin = AIOKafkaAdminClient(bootstrap_servers=s.bootstrap, **s.security)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(s.physical(group))
    except KafkaError:  # e.g. the group's coordinator is not ready yet: not caught up
        return False
    finally:
        await admin.close()
    return all(end == 0 or (tp in committed and committed[tp].offset >= end) for tp, end in ends.items())


async def _decoded(bus: KafkaBus, topic: str, type_):
    return [msgspec.json.decode(r.value, type=type_) for r in await bus.read_all(topic, timeout_s=20)]


async def _publish(bus: KafkaBus, topic: str, events) -> None:
    for ev in events:
        await bus.publish(topic, key_for(topic, ev), encode(ev))
    await bus.flush()


def _ticks(minutes, price: float | None = None) -> list[Tick]:
    now = time.time_ns()
    return [Tick(symbol=SYMBOL, venue="test", kind="trade", ts_event=T0 + m * MIN, ts_recv=now,
                 price=100.0 + m % 3 if price is None else price, size=1.0) for m in minutes]


def _alert_id_of(body: dict) -> str:
    return body["attachments"][0]["footer"].removeprefix("ticktide alert ")


async def test_breach_gives_one_alert_and_one_delivery_per_episode_edge_though_the_webhook_fails_twice(
        kafka_url, processes, tmp_path):
    bus = KafkaBus(kafka_url)
    await bus.ensure_topics(["fills.v1", "ticks.v1", "features.v1", "targets.v1", "risk.v1", "alerts.v1",
                             "health.v1", "dlq.v1"])
    async with FlakyWebhook(fail=2) as hook:
        risk_cfg = tmp_path / "risk.toml"
        risk_cfg.write_text(f"""
initial_cash = 100000.0
publish_interval_s = 0            # every mark publishes a risk.v1 update (and checks the limits)
[limits]
max_position = 0.5                # the fill below puts ~80 % of the book in {SYMBOL}
max_volatility = 1000.0           # out of the way: only the position limit is under test
max_drawdown = 1000.0
min_episode_bars = 0              # the whole test is inside one daily sample interval
""")
        alerts_cfg = tmp_path / "alerts.toml"
        # default subject dedup (300 s): it runs in event time, like the risk cooldown, so the
        # second breach an hour of event time later is delivered although it arrives seconds later
        alerts_cfg.write_text(f"""
[retry]
attempts = 5
base_delay_s = 0.05
max_delay_s = 0.2
timeout_s = 5.0
[health]
enabled = false
[[destinations]]
name = "slack"
kind = "webhook"
url = "{hook.url}"
""")
        risk = processes.start("consume", "risk", "--bus", kafka_url, "--config", str(risk_cfg), name="risk")
        alerts = processes.start("consume", "alerts", "--bus", kafka_url, "--config", str(alerts_cfg),
                                 name="alerts")

        def logs() -> str:
            return "\n".join(f"--- {n}:\n{processes.log(p)[-3000:]}" for n, p in (("risk", risk), ("alerts", alerts)))

        async def risk_done() -> bool:
            assert risk.poll() is None, logs()
            return await _caught_up(bus, "risk", ["fills.v1", "ticks.v1"])

        async def alerts_done() -> bool:
            assert alerts.poll() is None, logs()
            return await _caught_up(bus, "alerts", ["alerts.v1"])

        # -- phase 1: one fill breaches the limit, then marks that keep it breached ---------------
        fill = Fill(fill_id="f1", order_id="o1", portfolio_id=PORTFOLIO, symbol=SYMBOL, side="buy",
                    quantity=800, price=100.0, ts_event=T0, ts_proc=time.time_ns())
        await _publish(bus, "fills.v1", [fill])
        # fills.v1 and ticks.v1 are different topics (no order between them): the fill goes first
        await wait_until(risk_done, 45, interval=0.5, what="risk to process the fill")
        await _publish(bus, "ticks.v1", _ticks(PHASE1_MINUTES))
        await wait_until(risk_done, 30, interval=0.5, what="risk to process the phase-1 ticks")

        updates = await _decoded(bus, "risk.v1", RiskUpdate)
        assert len(updates) == 1 + len(PHASE1_MINUTES), "one risk update per fill and per mark"
        assert all(u.exposures[SYMBOL] > 0.5 for u in updates), "the limit stays breached"
        published = await _decoded(bus, "alerts.v1", Alert)
        assert [(a.type, a.source, a.symbol, a.details["limit"], a.ts_event) for a in published] == [
            ("limit_breach", "risk", SYMBOL, "max_position", T0)], "exactly one alert for the episode"

        await wait_until(lambda: _true(len(hook.delivered) >= 1), 30, interval=0.1, what="the first delivery")
        await wait_until(alerts_done, 30, interval=0.5, what="alerts to consume alerts.v1")
        assert hook.statuses == [500, 500, 200], "two failures, one retry that succeeds"
        assert hook.requests == [hook.requests[0]] * 3, "every attempt sends the same alert"
        first = hook.delivered[0]
        assert isinstance(first["text"], str) and SYMBOL in first["text"] and "limit_breach" in first["text"]
        assert _alert_id_of(first) == published[0].alert_id

        # -- phase 2: marks an hour later, the limit still breached: no new alert ------------------
        await _publish(bus, "ticks.v1", _ticks(PHASE2_MINUTES))
        await wait_until(risk_done, 30, interval=0.5, what="risk to process the phase-2 ticks")
        updates = await _decoded(bus, "risk.v1", RiskUpdate)
        assert len(updates) == 1 + len(PHASE1_MINUTES) + len(PHASE2_MINUTES)
        assert all(u.exposures[SYMBOL] > 0.5 for u in updates)
        assert len(await _decoded(bus, "alerts.v1", Alert)) == 1, "one alert per episode, however long"

        # -- phase 3: the price falls, the position is back below the limit: one resolve ---------
        await _publish(bus, "ticks.v1", _ticks(PHASE3_MINUTES, price=20.0))
        await wait_until(risk_done, 30, interval=0.5, what="risk to process the phase-3 ticks")
        published = await _decoded(bus, "alerts.v1", Alert)
        assert [(a.type, a.details["limit"], a.ts_event) for a in published] == [
            ("limit_breach", "max_position", T0),
            ("limit_resolved", "max_position", T0 + PHASE3_MINUTES[0] * MIN)], "one resolve when it clears"
        assert published[1].details["resolves"] == published[0].alert_id

        await wait_until(lambda: _true(len(hook.delivered) >= 2), 30, interval=0.1, what="the second delivery")
        await wait_until(alerts_done, 30, interval=0.5, what="alerts to consume alerts.v1")

        # SIGTERM: risk commits and snapshots, alerts drains its dispatcher; both exit 0
        assert processes.stop(risk) == 0, logs()
        assert processes.stop(alerts) == 0, logs()
        # final: nothing else was published or delivered
        assert len(await _decoded(bus, "alerts.v1", Alert)) == 2
        assert hook.statuses == [500, 500, 200, 200]
        assert [_alert_id_of(b) for b in hook.delivered] == [a.alert_id for a in published]
        assert all("text" in b and SYMBOL in b["text"] for b in hook.delivered)
    await bus.close()


async def _true(value: bool) -> bool:
    return value
