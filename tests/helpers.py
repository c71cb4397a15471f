"""Small shared test helpers (no mocks of the bus: tests use MemoryBus or real Kafka)."""

from __future__ import annotations

import time
from typing import Sequence

import msgspec

from schemas.events import FeatureVector, Tick
from streaming.processor import Envelope, Output, Processor, ProcessResult


def trade(symbol: str, price: float, seq: int, size: float = 1.0, venue: str = "test") -> Tick:
    now = time.time_ns()
    return Tick(symbol=symbol, venue=venue, kind="trade", ts_event=1_700_000_000_000_000_000 + seq,
                ts_recv=now, price=price, size=size, side="buy", trade_id=str(seq), seq=seq)


class CountingProcessor(Processor):
    """Counts trades per symbol (stateful) and raises on the symbol POISON."""

    name = "counting"
    inputs = ("ticks.v1",)
    stateful = True

    def __init__(self) -> None:
        self.counts: dict[int, dict[str, int]] = {}

    def process(self, batch: Sequence[Envelope]) -> ProcessResult:
        out = ProcessResult()
        for env in batch:
            tick = env.event
            if tick.symbol == "POISON":
                raise ValueError("poison tick")
            part = self.counts.setdefault(env.partition, {})
            part[tick.symbol] = part.get(tick.symbol, 0) + 1
            n = part[tick.symbol]
            out.outputs.append(Output("features.v1", FeatureVector(
                symbol=tick.symbol, ts_event=tick.ts_event, ts_ingest=tick.ts_recv, ts_proc=time.time_ns(),
                seq=n, source="tick", price=tick.price, values={"count": float(n)})))
        return out

    def snapshot(self, partition: int) -> bytes | None:
        return msgspec.json.encode(self.counts.get(partition, {}))

    def restore(self, partition: int, data: bytes) -> None:
        self.counts[partition] = msgspec.json.decode(data, type=dict[str, int])

    def drop(self, partition: int) -> None:
        self.counts.pop(partition, None)
