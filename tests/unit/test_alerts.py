"""Alerts: dedup, rate limits, health monitoring, and real local webhook + SMTP servers with failures."""

from __future__ import annotations

import asyncio
import socket

import msgspec
from aiosmtpd.controller import Controller

from consumers.alerts import create_processor
from consumers.alerts.config import AlertsConfig, HealthConfig
from consumers.alerts.health import HealthMonitor
from consumers.alerts.policy import Deduplicator, RateLimiter
from consumers.alerts.processor import AlertsProcessor
from consumers.risk.config import RiskConfig
from consumers.risk.processor import RiskProcessor
from schemas.events import Alert, Fill, Health, Tick
from streaming.bus.memory import MemoryBus
from streaming.codec import encode
from streaming.processor import Envelope
from streaming.runner import Runner, RunnerSettings
from tests.helpers import FlakyWebhook

S = 1_000_000_000
T0 = 1_700_000_000 * S


def alert(i=0, type_="limit_breach", symbol="AAA", severity="critical", **details) -> Alert:
    return Alert(alert_id=f"a{i}", source="risk", type=type_, severity=severity, message=f"breach {i}",
                 ts_event=T0 + i, ts_proc=T0 + i, symbol=symbol, details=details)


def health(component="producer:binance", events_out=0, error_rate=0.0, events_in=100) -> Health:
    return Health(component=component, instance="i1", status="ok", ts_proc=T0, events_in=events_in,
                  events_out=events_out, errors=int(error_rate * events_in), error_rate=error_rate)


def test_dedup_by_id_and_subject_window():
    d = Deduplicator(window_s=60)
    assert d.admit(alert(1), T0)
    assert not d.admit(alert(1), T0 + 999 * S)  # same id: a replay, never again
    assert not d.admit(alert(2), T0 + 30 * S)  # same subject inside the window
    assert d.admit(alert(3, symbol="BBB"), T0 + 30 * S)
    assert d.admit(alert(4, limit="max_drawdown"), T0 + 30 * S)  # another limit: another subject
    assert d.admit(alert(5), T0 + 61 * S)


def test_rate_limiter_bounds_a_storm():
    rl = RateLimiter(max_events=5, window_s=10)
    admitted = [t for t in range(0, 100) if rl.admit(T0 + t * S // 10)]  # 100 in 10 s
    assert len(admitted) == 5 and rl.suppressed == 95
    assert rl.admit(T0 + 10 * S) and rl.take_suppressed() == 95 and rl.suppressed == 0


def test_health_monitor_missing_error_rate_and_stale_feed():
    mon = HealthMonitor(HealthConfig(missing_after_s=30, error_rate=0.10, stale_after_s=20))
    assert mon.observe(health(events_out=10), T0) == []
    assert mon.observe(health("risk", events_out=5, error_rate=0.05), T0) == []
    [a] = mon.observe(health("risk", events_out=6, error_rate=0.12), T0 + 10 * S)
    assert (a.type, a.severity, a.details["component"]) == ("error_rate", "warning", "risk")
    assert mon.observe(health("risk", events_out=7, error_rate=0.5), T0 + 11 * S) == []  # edge-triggered
    assert mon.observe(health(events_out=10), T0 + 15 * S) == []  # no progress yet, not stale yet
    [st] = mon.observe(health(events_out=10), T0 + 21 * S)
    assert st.type == "stale_feed" and st.details["component"] == "producer:binance"
    assert mon.check(T0 + 25 * S) == []
    missing = mon.check(T0 + 60 * S)
    assert sorted(a.details["component"] for a in missing) == ["producer:binance", "risk"]
    assert all(a.type == "component_missing" and a.severity == "critical" for a in missing)
    assert mon.check(T0 + 90 * S) == []  # once per outage
    # back and progressing: both of the feed's alerts are resolved, with their severities
    back = mon.observe(health(events_out=11), T0 + 91 * S)
    assert [(a.type, a.severity, a.details["component"]) for a in back] == [
        ("component_missing_resolved", "critical", "producer:binance"),
        ("stale_feed_resolved", "warning", "producer:binance")]
    assert back[0].details["resolves"] == [m for m in missing if m.details["component"] == "producer:binance"][0].alert_id
    assert back[1].details["resolves"] == st.alert_id and back[1].details["duration_s"] == 70.0
    assert mon.observe(health(events_out=12), T0 + 92 * S) == []  # resolved once
    # risk: still erroring when it comes back, then under the threshold
    [risk_back] = mon.observe(health("risk", events_out=8, error_rate=0.2), T0 + 93 * S)
    assert risk_back.type == "component_missing_resolved"
    [err_ok] = mon.observe(health("risk", events_out=9, error_rate=0.01), T0 + 95 * S)
    assert (err_ok.type, err_ok.severity, err_ok.details["resolves"]) == ("error_rate_resolved", "warning", a.alert_id)
    assert "back under 10%" in err_ok.message
    [again] = mon.observe(health("risk", events_out=10, error_rate=0.2), T0 + 96 * S)  # a new episode
    assert again.type == "error_rate"
    quiet = HealthMonitor(HealthConfig(error_rate=0.10, notify_resolved=False))
    quiet.observe(health("risk", error_rate=0.2), T0)
    assert quiet.observe(health("risk", error_rate=0.0), T0 + S) == []


class FlakySmtp:
    """aiosmtpd handler: 451 for the first ``fail`` messages, then accepts."""

    def __init__(self, fail: int = 0) -> None:
        self.fail, self.attempts, self.messages = fail, 0, []

    async def handle_DATA(self, server, session, envelope):
        self.attempts += 1
        if self.attempts <= self.fail:
            return "451 4.3.0 try again later"
        self.messages.append(envelope.content.decode())
        return "250 OK"


def _config(hook_url=None, smtp_port=None, **extra) -> AlertsConfig:
    dests = []
    if hook_url:
        dests.append({"name": "slack", "kind": "webhook", "url": hook_url, "max_per_window": 3, "window_s": 60})
    if smtp_port:
        dests.append({"name": "mail", "kind": "email", "host": "127.0.0.1", "port": smtp_port,
                      "to": ["oncall@example.com"], "sender": "tt@example.com"})
    return AlertsConfig.from_mapping({"retry": {"attempts": 4, "base_delay_s": 0.01, "max_delay_s": 0.05,
                                                "timeout_s": 5}, "destinations": dests, **extra})


async def test_webhook_retries_until_it_recovers_and_sends_slack_json():
    async with FlakyWebhook(fail=2) as hook:
        proc = AlertsProcessor(_config(hook.url), clock=lambda: T0)
        proc.process([Envelope("alerts.v1", 0, 0, None, alert(1, portfolio_id="p1", limit="max_position"))])
        assert await asyncio.to_thread(proc.dispatcher.wait_idle, 10)
        proc.close()
    assert len(hook.requests) == 3 and len(hook.delivered) == 1
    body = hook.delivered[0]
    assert body["text"].startswith("[CRITICAL] risk limit_breach AAA: breach 1")
    att = body["attachments"][0]
    assert att["color"] == "#D00000" and {"title": "limit", "value": "max_position", "short": True} in att["fields"]
    assert proc.dispatcher.delivered == [("slack", "a1")] and proc.dispatcher.failed == []


async def test_webhook_storm_is_bounded_and_a_dead_destination_gives_up():
    async with FlakyWebhook() as hook:
        proc = AlertsProcessor(_config(hook.url), clock=lambda: T0)
        storm = [Envelope("alerts.v1", 0, i, None, alert(i, symbol=f"S{i}")) for i in range(200)]
        proc.process(storm + storm)  # and every alert twice
        assert await asyncio.to_thread(proc.dispatcher.wait_idle, 10)
        proc.close()
    assert len(hook.delivered) == 3  # max_per_window

    dead = AlertsProcessor(_config("http://127.0.0.1:9/nothing"), clock=lambda: T0)
    dead.route(alert(1), T0)
    assert await asyncio.to_thread(dead.dispatcher.wait_idle, 10)
    dead.close()
    assert dead.dispatcher.failed == [("slack", "a1")] and dead.dispatcher.delivered == []


async def test_email_through_a_real_smtp_server_that_fails_then_recovers():
    handler = FlakySmtp(fail=2)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        proc = AlertsProcessor(_config(smtp_port=port), clock=lambda: T0)
        proc.route(alert(7, severity="critical", limit="max_drawdown"), T0)
        proc.route(alert(8, severity="info", symbol="ZZZ"), T0)  # below min_severity: not sent
        assert await asyncio.to_thread(proc.dispatcher.wait_idle, 10)
        proc.close()
    finally:
        controller.stop()
    assert handler.attempts == 3 and len(handler.messages) == 1
    msg = handler.messages[0]
    assert "Subject: [ticktide] [CRITICAL] risk limit_breach AAA" in msg and "breach 7" in msg


async def test_health_alerts_are_published_then_delivered():
    now = [T0]
    async with FlakyWebhook() as hook:
        cfg = _config(hook.url, health={"missing_after_s": 30})
        cfg.destinations[0].max_per_window = 10  # the rate limit is another test's subject
        proc = AlertsProcessor(cfg, clock=lambda: now[0])
        out = proc.process([Envelope("health.v1", 0, 0, None, health("risk", events_out=1, error_rate=0.2))])
        [err] = [o.event for o in out.outputs]
        assert err.type == "error_rate" and out.outputs[0].topic == "alerts.v1"
        now[0] += 31 * S
        [missing] = [o.event for o in proc.tick(now[0]).outputs]
        assert missing.type == "component_missing"
        now[0] += S
        back = proc.process([Envelope("health.v1", 0, 1, None, health("risk", events_out=2, error_rate=0.0))])
        resolved = [o.event for o in back.outputs]
        assert [r.type for r in resolved] == ["component_missing_resolved", "error_rate_resolved"]
        proc.process([Envelope("alerts.v1", 0, i, None, a)
                      for i, a in enumerate([err, missing, missing, *resolved])])
        assert await asyncio.to_thread(proc.dispatcher.wait_idle, 10)
        proc.close()
    texts = sorted(b["text"] for b in hook.delivered)
    assert len(texts) == 4
    assert ["component_missing" in texts[0], "component_missing_resolved" in texts[1],
            "error_rate" in texts[2], "error_rate_resolved" in texts[3]] == [True] * 4


async def test_breached_limit_gives_one_alert_and_one_delivery_though_the_webhook_fails_twice(tmp_path):
    """Done criterion: risk -> alerts.v1 -> alerts consumer -> webhook, on the memory bus."""
    cfg = tmp_path / "alerts.toml"
    async with FlakyWebhook(fail=2) as hook:
        cfg.write_text(f"""
[retry]
attempts = 5
base_delay_s = 0.01
[health]
enabled = false
[[destinations]]
name = "slack"
kind = "webhook"
url = "{hook.url}"
""")
        bus = MemoryBus()
        fill = Fill(fill_id="f1", order_id="o1", portfolio_id="p1", symbol="AAA", side="buy", quantity=800,
                    price=100.0, ts_event=T0, ts_proc=T0)
        await bus.publish("fills.v1", b"p1", encode(fill))
        for i in range(1, 50):  # a mark every minute for 49 minutes, still breached: one alert per episode
            t = Tick(symbol="AAA", venue="t", kind="trade", ts_event=T0 + i * 60 * S, ts_recv=T0, price=100 + i % 3)
            await bus.publish("ticks.v1", b"AAA", encode(t))
        risk = RiskProcessor(RiskConfig.from_mapping({"initial_cash": 100_000.0, "publish_interval_s": 0,
                                                      "limits": {"max_position": 0.5}}))
        alerts = create_processor(str(cfg))
        settings = RunnerSettings(poll_timeout_ms=10, health_interval_s=60)
        runners = [Runner(risk, bus, settings), Runner(alerts, bus, settings)]
        tasks = [asyncio.create_task(r.run()) for r in runners]
        for _ in range(300):
            await asyncio.sleep(0.02)
            if hook.delivered:
                break
        await asyncio.sleep(0.2)  # anything else would have arrived by now
        for r in runners:
            r.stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    published = [msgspec.json.decode(r.value, type=Alert) for r in await bus.read_all("alerts.v1")]
    updates = await bus.read_all("risk.v1")
    assert len(updates) == 50 and len(published) == 1 and published[0].type == "limit_breach"
    assert len(hook.requests) == 3 and len(hook.delivered) == 1
    assert "AAA" in hook.delivered[0]["text"]
