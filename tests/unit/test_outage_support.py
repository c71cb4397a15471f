"""Pieces that make outages honest, without a broker: the watch's bounded log and state, the Kafka
client's log limiter, the ordered bounded publish buffer, shutdown steps that end in time."""

from __future__ import annotations

import asyncio
import logging

import pytest
from prometheus_client import REGISTRY

from streaming import connectivity, metrics
from streaming.bus.buffered import BufferedBus
from streaming.deadline import bounded


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_watch_logs_once_then_a_summary_per_interval_then_recovery(caplog):
    caplog.set_level(logging.INFO, logger="ticktide.bus")
    metrics.set_role("unit-watch")
    clock = Clock()
    watch = connectivity.BrokerWatch("127.0.0.1:1", clock=clock, summary_interval_s=30)
    watch.describe_waiting(lambda: "12,345 messages buffered")
    listened = []
    watch.on_change(listened.append)
    watch.contact()
    assert REGISTRY.get_sample_value("ticktide_bus_up", {"role": "unit-watch"}) == 1
    for _ in range(90):  # a probe a second for 90 s
        clock.now += 1
        watch.failure("Connect call failed")
        assert watch.reason().startswith("broker 127.0.0.1:1 unreachable for ")
    assert REGISTRY.get_sample_value("ticktide_bus_up", {"role": "unit-watch"}) == 0
    clock.now += 1
    watch.contact()
    lines = [r for r in caplog.records if r.name == "ticktide.bus"]
    # the first failure, a summary after 30 and 60 s, the recovery: 4 lines for a 90 s outage
    assert len(lines) == 4, [r.getMessage() for r in lines]
    assert lines[0].levelno == logging.WARNING and "12,345 messages buffered" in lines[0].getMessage()
    assert "unreachable for 60 s" in lines[2].getMessage()
    assert lines[-1].levelno == logging.INFO and "after an outage of 90 s" in lines[-1].getMessage()
    assert listened == [True, False, True]
    assert watch.reason() == ""
    assert REGISTRY.get_sample_value("ticktide_bus_last_contact_timestamp_seconds", {"role": "unit-watch"}) > 1e9


def test_client_log_limiter_drops_connection_noise_and_rate_limits_the_rest(caplog):
    caplog.set_level(logging.INFO, logger="aiokafka.unit-test")  # whatever a CLI test set "aiokafka" to
    limiter = connectivity.ClientLogLimiter(interval_s=30)
    client = logging.getLogger("aiokafka.unit-test")
    client.addHandler(limiter)
    client.propagate = False
    try:
        for _ in range(1000):
            client.error("Unable connect to node with id %s: %s", 1, "refused")
            client.warning("Got error produce response: %s", "NodeNotReadyError")
            client.info("Joined group %r", "g")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            client.exception("Unexpected error in %s", "sender")
    finally:
        client.removeHandler(limiter)
        client.propagate = True
    written = [r for r in caplog.records if r.name == "aiokafka.unit-test"]
    assert [r.getMessage() for r in written] == ["Joined group 'g'", "Unexpected error in sender"]
    assert written[-1].exc_info is None  # one line, no traceback
    assert limiter.take_suppressed() == 2999


async def test_buffer_keeps_order_through_refusals_and_pushes_back_when_full():
    class FlakyBus:
        url = "flaky://"
        watch = None

        def __init__(self) -> None:
            self.down = True
            self.got: list[bytes] = []

        async def start(self) -> None: ...

        def pending(self) -> int:
            return 0

        async def publish(self, topic, key, value, headers=(), partition=None) -> None:
            if self.down:
                raise ConnectionError("broker away")
            self.got.append(value)

        async def flush(self) -> None: ...

        async def close(self) -> None: ...

    inner = FlakyBus()
    bus = BufferedBus(inner, capacity=10)
    await bus.start()
    for i in range(10):
        await bus.publish("ticks.v1", None, b"%d" % i)
    assert len(bus) == 10
    blocked = asyncio.create_task(bus.publish("ticks.v1", None, b"10"))
    await asyncio.sleep(0.2)
    assert not blocked.done(), "a full buffer must make the publisher wait"
    inner.down = False  # the broker is back
    await asyncio.wait_for(blocked, 5)
    await asyncio.wait_for(bus.flush(), 5)
    assert inner.got == [b"%d" % i for i in range(11)]
    await bus.close()


async def test_bounded_steps_end_in_time_and_never_raise():
    assert await bounded(asyncio.sleep(0), 1) == ""
    assert "not done" in await bounded(asyncio.sleep(10), 0.05)

    async def fails():
        raise ConnectionError("gone")

    assert await bounded(fails(), 1) == "ConnectionError: gone"


def test_buffer_needs_room():
    with pytest.raises(ValueError):
        BufferedBus(object(), capacity=0)


def test_bootstrap_lists_parse_into_probe_targets():
    assert connectivity.parse_servers("h1:9092,[::1]:9093, h3") == [("h1", 9092), ("::1", 9093), ("h3", 9092)]
    assert connectivity.parse_servers("127.0.0.1:29192") == [("127.0.0.1", 29192)]


async def test_probe_tells_a_kafka_answer_from_a_closed_port():
    import socket as socketlib
    import struct

    async def answer(reader, writer):  # a minimal ApiVersions responder
        size = struct.unpack(">i", await reader.readexactly(4))[0]
        request = await reader.readexactly(size)
        correlation = request[4:8]
        writer.write(struct.pack(">i", 6) + correlation + b"\x00\x00")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        await connectivity.probe_broker("127.0.0.1", port)
    with socketlib.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(OSError):
        await connectivity.probe_broker("127.0.0.1", closed)
