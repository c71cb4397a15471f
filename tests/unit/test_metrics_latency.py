"""End-to-end latency is observed for every event of a batch (in one step), not once per batch."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram

from consumers.features.processor import FeaturesProcessor
from streaming import metrics
from streaming.bus.memory import MemoryBus
from streaming.codec import encode
from streaming.runner import Runner, RunnerSettings
from tests.helpers import drain, trade

BOUNDS = metrics.LATENCY_BUCKETS


def _samples(registry, name: str) -> dict:
    return {(s.name, s.labels.get("le")): s.value for m in registry.collect() for s in m.samples
            if s.name.startswith(name) and not s.name.endswith("_created")}


def test_observe_latencies_equals_observe_per_value():
    now = 10_000_000_000_000
    seconds = [0.0, 0.0004, 0.0005, 0.00050001, 0.001, 0.003, 0.05, 1.0, 2.5, 29.9, 30.0, 31.0, 500.0]
    stamps = [now - round(s * 1e9) for s in seconds] + [0, now + 5_000_000]  # unknown; from the future
    bulk_reg, ref_reg = CollectorRegistry(), CollectorRegistry()
    bulk = Histogram("lat", "test", buckets=BOUNDS, registry=bulk_reg)
    ref = Histogram("lat", "test", buckets=BOUNDS, registry=ref_reg)
    metrics.observe_latencies(bulk, now, stamps)
    for s in seconds + [0.0]:  # the future stamp counts as 0 s, the unknown one not at all
        ref.observe(s)
    want = _samples(ref_reg, "lat")
    assert _samples(bulk_reg, "lat") == {k: pytest.approx(v, rel=1e-9, abs=1e-12) for k, v in want.items()}


async def test_a_batch_of_features_observes_one_latency_per_vector():
    with metrics.private_registry() as registry:
        bus = MemoryBus()
        for i in range(120):
            t = trade(("AAA", "BBB", "CCC")[i % 3], 100.0 + i, i)
            await bus.publish("ticks.v1", t.symbol.encode(), encode(t))
        runner = Runner(FeaturesProcessor(), bus, RunnerSettings(poll_timeout_ms=10, max_records=1000))
        await drain(runner)
        assert len(await bus.read_all("features.v1")) == 120
        count = registry.get_sample_value("ticktide_end_to_end_latency_seconds_count",
                                          {"consumer": "features", "topic": "features.v1"})
        batches = registry.get_sample_value("ticktide_batch_size_count", {"consumer": "features"})
    assert batches < 120 and count == 120  # every vector, not one sample per batch
