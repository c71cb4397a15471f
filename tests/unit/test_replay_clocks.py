"""`ticktide replay`: every tick keeps its recorded event time; --recv-time only changes ts_recv."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from producers.recordings.readers import read_frames
from producers.recordings.replay import replay_into_bus
from schemas.events import Tick
from streaming import codec
from streaming.bus.memory import MemoryBus

RECORDING = Path(__file__).resolve().parents[1] / "data" / "BINANCE.ws.1.0"  # spot: quotes without event time


async def replayed_ticks(recv_time: str) -> list[Tick]:
    bus = MemoryBus("memory://replay-clocks")
    await bus.start()
    await replay_into_bus(RECORDING, "binance", bus, speed=0, recv_time=recv_time)
    records = await bus.read_all("ticks.v1")
    return [codec.decode("ticks.v1", r.value) for r in records]


@pytest.mark.parametrize("recv_time", ["wall", "recorded"])
async def test_ts_event_comes_from_the_recording_for_trades_and_quotes(recv_time):
    recorded = [ts for ts, _ in read_frames(RECORDING)]
    first, last = min(recorded), max(recorded)
    started = time.time_ns()
    ticks = await replayed_ticks(recv_time)
    kinds = {t.kind for t in ticks}
    assert kinds == {"trade", "quote"}, kinds
    for t in ticks:  # no tick is stamped "now": all event times lie in the recorded session (2024)
        assert t.ts_event <= last, (t.kind, t.ts_event)
        assert t.ts_event >= first - 60 * 10**9, (t.kind, t.ts_event)
    if recv_time == "wall":
        assert all(t.ts_recv >= started for t in ticks)
    else:
        assert all(first <= t.ts_recv <= last for t in ticks)
