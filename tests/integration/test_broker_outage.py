"""The broker dies under a running pipeline: every process says so, logs little, recovers, and stops.

A private broker (killed with SIGKILL and restarted on its data dir, like a
crash) under the features consumer (at-least-once), the signals consumer
(``--exactly-once``), ``ticktide subscribe`` and the gateway, all real OS
processes. Checked: ``ticktide_bus_up`` 0 within 30 s and 1 after the
restart, health ``degraded`` with a reason then ``ok``, no consumer lag
number while the broker is away, fewer than 20 log lines per process over a
60 s outage (no traceback, no unretrieved future), and SIGTERM during an
outage exits 0 within ``--shutdown-timeout``.

A replay runs into the same outage with a small ``--buffer``: it never
exits, its websocket read waits while the buffer is full, and when the
broker is back every recorded tick is on ``ticks.v1`` exactly once, in order.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from pathlib import Path

import msgspec
import pytest

from schemas.topics import changelog_topic
from schemas.events import Health
from streaming.bus.kafka import KafkaBus
from tests.integration.brokers import PrivateBroker, assert_every_tick_once_in_order, read_topic
from tests.integration.conftest import Processes
from tests.ops.promtest import free_port

pytestmark = pytest.mark.kafka

RECORDING = Path(__file__).resolve().parents[1] / "data" / "spot_btcusdt_20240808.ndjson.gz"
OUTAGE_S = 60
SHUTDOWN_TIMEOUT_S = 6
TOKEN = "outage-test-token"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
        return resp.read().decode()


def _samples(port: int, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric family on a process's /metrics."""
    out = {}
    for line in _get(f"http://127.0.0.1:{port}/metrics").splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _, value = line.rpartition(" ")
            out[labels[len(name):]] = float(value)
    return out


def _health(port: int) -> dict:
    return json.loads(_get(f"http://127.0.0.1:{port}/health"))


def _eventually(check, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = check()
            if last:
                return last
        except OSError as exc:  # a process not serving yet
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def _log_lines(procs: Processes, proc) -> list[str]:
    # subscribe prints the records themselves on stdout: only log lines count
    return [line for line in procs.log(proc).splitlines() if line.strip() and not line.startswith("{")]


def _replay(procs: Processes, url: str) -> None:
    replay = procs.start("replay", str(RECORDING), "--venue", "binance", "--speed", "max", "--bus", url,
                         "--recv-time", "recorded", name="replay")
    assert replay.wait(120) == 0, procs.log(replay)[-3000:]


@pytest.mark.timeout(420)
def test_outage_is_reported_bounded_recovered_and_stops(kafka_broker, processes: Processes, tmp_path: Path):
    broker = PrivateBroker(tmp_path / "kafka")
    broker.start()
    try:
        _run_outage_scenario(broker, processes)
    finally:
        broker.remove()


def _run_outage_scenario(broker: PrivateBroker, processes: Processes) -> None:
    url = broker.url
    asyncio.run(_create_topics(url))
    ports = {name: free_port() for name in ("features", "signals", "subscribe", "gateway")}
    down = str(SHUTDOWN_TIMEOUT_S)
    procs = {
        "features": processes.start("consume", "features", "--bus", url, "--metrics-port", str(ports["features"]),
                                    "--shutdown-timeout", down, name="features"),
        "signals": processes.start("consume", "signals", "--bus", url, "--exactly-once", "--metrics-port",
                                   str(ports["signals"]), "--shutdown-timeout", down, name="signals"),
        "subscribe": processes.start("subscribe", "ticks.v1", "--bus", url, "--metrics-port",
                                     str(ports["subscribe"]), "--shutdown-timeout", down, name="subscribe"),
        "gateway": processes.start("gateway", "--bus", url, "--port", str(ports["gateway"]),
                                   "--shutdown-timeout", down, name="gateway",
                                   env={"TICKTIDE_GATEWAY_TOKENS": TOKEN}),
    }
    _replay(processes, url)
    _eventually(lambda: _samples(ports["features"], "ticktide_events_in_total"), 90, "features reading ticks")
    # a replay of its own (topics under another prefix) that the outage will hit mid-stream
    replay_url = f"{url}?prefix=outage."
    asyncio.run(_create_topics(replay_url))
    ports["replay"] = free_port()
    replay = processes.start("replay", str(RECORDING), "--venue", "binance", "--speed", "max", "--bus", replay_url,
                             "--recv-time", "recorded", "--buffer", "5000", "--metrics-port", str(ports["replay"]),
                             name="replay-outage")
    _eventually(lambda: _samples(ports["features"], "ticktide_consumer_lag"), 30, "features reporting its lag")

    def bus_up(name: str) -> float | None:
        values = _samples(ports[name], "ticktide_bus_up")
        assert len(values) <= 1, values
        return next(iter(values.values()), None)

    for name in procs:
        _eventually(lambda: bus_up(name) == 1.0, 60, f"{name}: ticktide_bus_up 1")
        assert _health(ports[name])["status"] == "ok", name
        assert _samples(ports[name], "ticktide_bus_last_contact_timestamp_seconds")
    before = {name: len(_log_lines(processes, p)) for name, p in procs.items()}
    # each process exports the families of what it runs, nothing else
    exported = {name: _get(f"http://127.0.0.1:{ports[name]}/metrics") for name in procs}
    for foreign in ("ticktide_signals_total", "ticktide_gateway_", "ticktide_ws_", "ticktide_risk_"):
        assert foreign not in exported["features"], foreign
    for foreign in ("ticktide_events_in_total", "ticktide_signals_total", "ticktide_ws_", "ticktide_up"):
        assert foreign not in exported["gateway"], foreign
    _eventually(lambda: sum(_samples(ports["replay"], "ticktide_producer_ticks_total").values()) >= 500, 60,
                "the replay publishing")

    # -- the broker crashes: every process says so within 30 s ---------------------------
    broker.kill()
    killed = time.monotonic()
    for name in procs:
        _eventually(lambda: bus_up(name) == 0.0, 30, f"{name}: ticktide_bus_up 0")
        health = _health(ports[name])
        assert health["status"] == "degraded", (name, health)
        assert f"127.0.0.1:{broker.port} unreachable" in health["reason"], (name, health)
    assert json.loads(_get(f"http://127.0.0.1:{ports['gateway']}/health"))["bus_ready"] is False
    for name in ("features", "signals"):
        assert _samples(ports[name], "ticktide_consumer_lag") == {}, f"{name}: a stale lag while the broker is away"

    time.sleep(max(0.0, killed + OUTAGE_S - time.monotonic()))
    assert replay.poll() is None, f"the replay exited during the outage:\n{processes.log(replay)[-3000:]}"
    assert _samples(ports["replay"], "ticktide_bus_up") == {"{role=\"replay\"}": 0.0}
    for name, proc in procs.items():
        assert proc.poll() is None, f"{name} exited during the outage:\n{processes.log(proc)[-3000:]}"
        during = _log_lines(processes, proc)[before[name]:]
        assert len(during) < 20, f"{name} wrote {len(during)} log lines in a {OUTAGE_S} s outage:\n" + "\n".join(during)
        text = "\n".join(during)
        assert "Traceback" not in text and "never retrieved" not in text, text
        assert any("unreachable" in line and f"127.0.0.1:{broker.port}" in line for line in during), text

    # -- it comes back: so does everything, without a restart ----------------------------
    broker.start()
    for name in procs:
        _eventually(lambda: bus_up(name) == 1.0, 60, f"{name}: ticktide_bus_up 1 again")
        _eventually(lambda: _health(ports[name])["status"] == "ok", 30, f"{name}: health ok again")
        assert any("reachable again after an outage of" in line for line in _log_lines(processes, procs[name]))
    assert replay.wait(120) == 0, processes.log(replay)[-3000:]
    assert "Traceback" not in processes.log(replay) and "never retrieved" not in processes.log(replay)
    assert "publish buffer full" in processes.log(replay), "the small buffer should have filled (backpressure)"
    assert_every_tick_once_in_order(asyncio.run(read_topic(replay_url, "ticks.v1")), RECORDING)
    read_before = sum(_samples(ports["features"], "ticktide_events_in_total").values())
    _replay(processes, url)
    _eventually(lambda: sum(_samples(ports["features"], "ticktide_events_in_total").values()) > read_before, 60,
                "features reading again after the outage")
    _eventually(lambda: _samples(ports["features"], "ticktide_consumer_lag"), 30, "features lag reported again")
    # health.v1 said so too: degraded with the reason, then ok again
    statuses = _eventually(lambda: _features_health_after_outage(url), 60, "health.v1: degraded, then ok")
    assert any("unreachable" in reason for status, reason in statuses if status == "degraded"), statuses

    # -- a stop during an outage still stops, exit 0, within the bound ------------------------
    broker.kill()
    for name in procs:
        _eventually(lambda: bus_up(name) == 0.0, 30, f"{name}: ticktide_bus_up 0 (second outage)")
    signalled = time.monotonic()
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
    for name, proc in procs.items():
        code = proc.wait(SHUTDOWN_TIMEOUT_S + 10)
        took = time.monotonic() - signalled
        assert code == 0, f"{name} exited {code}:\n{processes.log(proc)[-3000:]}"
        assert took <= SHUTDOWN_TIMEOUT_S + 3, f"{name} took {took:.1f}s to stop"
        assert "Traceback" not in processes.log(proc), processes.log(proc)[-3000:]


async def _create_topics(url: str) -> None:
    bus = KafkaBus(url)
    try:
        await bus.ensure_topics(["ticks.v1", "bars.v1", "features.v1", "signals.v1", "dlq.v1", "health.v1",
                                 changelog_topic("features").name, changelog_topic("signals").name, "alerts.v1", "risk.v1"])
    finally:
        await bus.close()


def _features_health_after_outage(url: str) -> list[tuple[str, str]] | None:
    """The features consumer's health.v1 (status, reason) records, once a degraded one is followed by ok."""
    records = sorted(asyncio.run(read_topic(url, "health.v1")), key=lambda r: (r.partition, r.offset))
    found = [(h.status, h.reason) for h in (msgspec.json.decode(r.value, type=Health) for r in records)
             if h.component == "features"]
    statuses = [status for status, _ in found]
    if "degraded" in statuses and "ok" in statuses[statuses.index("degraded"):]:
        return found
    return None



def test_a_missing_topic_is_one_error_line_at_start(kafka_url, processes: Processes):
    replay = processes.start("replay", str(RECORDING), "--venue", "binance", "--speed", "max", "--bus", kafka_url,
                             name="replay-no-topics")
    assert replay.wait(60) == 2
    lines = [line for line in processes.log(replay).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("ticktide replay: topics ticks.v1, dlq.v1, alerts.v1 do not exist on "), lines
    assert "ticktide topics create --bus" in lines[0]
