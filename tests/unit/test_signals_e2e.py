"""Ticks -> features -> signals: live processors on the memory bus vs the two offline CLIs."""

from __future__ import annotations

import asyncio
import json

import msgspec
import numpy as np
import pytest

from consumers.signals import comparable
from consumers.signals.commands import signals_for_file
from consumers.signals.config import SignalsConfig
from consumers.signals.processor import SignalsProcessor
from schemas.events import Signal, Tick
from streaming.bus.memory import MemoryBus
from streaming.codec import encode
from streaming.runner import Runner, RunnerSettings

features_processor = pytest.importorskip("consumers.features.processor")

T0 = 1_700_000_000 * 10**9


def _ticks(n=500):
    rng = np.random.default_rng(5)
    out = []
    for sym in ("AAA", "BBB", "CCC"):
        p = 100.0
        for i in range(n):
            p *= 1 + rng.normal(0, 0.01) * (4 if rng.random() < 0.05 else 1)
            out.append(Tick(symbol=sym, venue="t", kind="trade", ts_event=T0 + i * 10**9, ts_recv=T0 + i * 10**9,
                            price=p, size=float(rng.lognormal(0, 1)), trade_id=str(i), seq=i))
    out.sort(key=lambda t: (t.ts_event, t.symbol))
    return out


async def _drain(runners, bus, expected_features):
    """Run until every tick became a FeatureVector and the signals stopped growing (kernels may compile)."""
    tasks = [asyncio.create_task(r.run()) for r in runners]
    last = -1
    for _ in range(1200):
        await asyncio.sleep(0.05)
        if len(await bus.read_all("features.v1")) < expected_features:
            continue
        n = len(await bus.read_all("signals.v1"))
        if n == last:
            break
        last = n
    for r in runners:
        r.stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def test_ticks_through_features_and_signals_match_the_offline_clis(tmp_path):
    from ticktide.cli import main

    ticks = _ticks()
    ticks_file = tmp_path / "ticks.jsonl"
    ticks_file.write_bytes(b"\n".join(encode(t) for t in ticks) + b"\n")
    feats_file = tmp_path / "features.jsonl"
    assert main(["features", "--input", str(ticks_file), "--format", "jsonl", "--output", str(feats_file)]) == 0

    config = SignalsConfig.from_mapping({"cooldown_s": 20})
    bus = MemoryBus()
    for t in ticks:
        await bus.publish("ticks.v1", t.symbol.encode(), encode(t))
    settings = RunnerSettings(poll_timeout_ms=10, max_records=200)
    await _drain([Runner(features_processor.FeaturesProcessor(), bus, settings),
                  Runner(SignalsProcessor(config), bus, settings)], bus, len(ticks))
    live = [comparable(msgspec.json.decode(r.value, type=Signal)) for r in await bus.read_all("signals.v1")]
    offline = [comparable(s) for s in signals_for_file(str(feats_file), config)]
    key = lambda s: s["signal_id"]  # noqa: E731
    live, offline = sorted(live, key=key), sorted(offline, key=key)
    assert len(live) > 30

    assert "price" in json.loads(feats_file.read_text().splitlines()[0])  # breakouts need the price
    assert live == offline
