"""bench_pipeline.py's check of every contender's output: read it back, count it, and compare
sampled values with the offline kernels' (FeatureEngine over the same series)."""

from __future__ import annotations

import time

import msgspec
import numpy as np

from pipeline_contenders import QUIX_FEATURES
from streaming.kernels.engine import FeatureEngine


class _Out(msgspec.Struct):
    symbol: str
    seq: int = 0
    values: dict[str, float | None] = {}


EXPECTED: dict[str, np.ndarray] = {}  # per symbol, the offline features (rows = seq - 1)
NAMES: list[str] = []


def offline_features(symbols, ps: np.ndarray, qs: np.ndarray, per_symbol: list[int]) -> None:
    eng = FeatureEngine()
    NAMES[:] = eng.names
    for i, sym in enumerate(symbols):
        row = eng.add_symbol(sym)
        k = per_symbol[i]
        EXPECTED[sym] = eng.update_trades(np.full(k, row, dtype=np.int64), ps[i, :k], qs[i, :k])


async def verify(contender: str, bootstrap: str, topic: str, n: int) -> int:
    """Read the output back: every tick has one output (distinct per symbol/seq), samples match."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer._client.add_topic(topic)
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        dec = msgspec.json.Decoder(_Out)
        seen: set[tuple[str, int]] = set()
        records = 0
        checked = 0
        deadline = time.monotonic() + 120
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{contender}: reading {topic} back timed out")
            got = await consumer.getmany(timeout_ms=500, max_records=20000)
            for recs in got.values():
                for r in recs:
                    records += 1
                    if contender == "passthrough":
                        continue
                    out = dec.decode(r.value)
                    seen.add((out.symbol, out.seq))
                    if out.seq % 997 == 0:
                        checked += check_values(contender, out)
    finally:
        await consumer.stop()
    distinct = records if contender == "passthrough" else len(seen)
    if distinct != n:
        raise RuntimeError(f"{contender}: {distinct} distinct outputs ({records} records), expected {n}")
    if contender != "passthrough" and checked == 0:
        raise RuntimeError(f"{contender}: no output sampled")
    return records


def check_values(contender: str, out: _Out) -> int:
    want = EXPECTED[out.symbol][out.seq - 1]
    names = QUIX_FEATURES if contender == "quix" else NAMES
    for name in names:
        w = want[NAMES.index(name)]
        got = out.values.get(name)
        if got is None:
            if w == w:
                raise RuntimeError(f"{contender}: {out.symbol}#{out.seq} {name} is null, expected {w}")
            continue
        tol = 1e-9 * max(1.0, abs(w)) if contender == "quix" else 0.0
        if not abs(got - w) <= tol:
            raise RuntimeError(f"{contender}: {out.symbol}#{out.seq} {name} = {got!r}, expected {w!r}")
    return 1


