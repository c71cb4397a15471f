"""The columnar batch path on the real broker: trade ticks, kill -9 mid-stream, exactly-once.

Ticks are the BTCUSDT trades of tests/data replayed as 8 symbols at different
price levels; batches are small so the kill lands between many transactions.
The reference is FeatureEngine over each symbol's series in one call.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import signal
from pathlib import Path

import msgspec
import numpy as np
import pytest

from schemas.events import FeatureVector, Tick
from streaming.bus.kafka import KafkaBus
from streaming.codec import encode
from streaming.kernels.engine import FeatureEngine
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.kafka

DATA = Path(__file__).resolve().parents[1] / "data" / "spot_btcusdt_20240808.ndjson.gz"
SYMBOLS = [f"T{i}USDT" for i in range(8)]
TICKS = 16_000


def _ticks() -> list[Tick]:
    trades = []
    with gzip.open(DATA, "rt") as f:
        for line in f:
            ns, frame = line.split(" ", 1)
            if '"btcusdt@trade"' in frame:
                d = json.loads(frame)["data"]
                trades.append((int(ns), float(d["p"]), float(d["q"])))
    out = []
    for j in range(TICKS):
        ns, p, q = trades[(j // len(SYMBOLS)) % len(trades)]
        k = j % len(SYMBOLS)
        out.append(Tick(symbol=SYMBOLS[k], venue="BINANCE", kind="trade", ts_event=ns + j, ts_recv=ns + j + 1,
                        price=p * (1 + 0.05 * k), size=q, side="sell"))
    return out


def _expected(ticks: list[Tick]) -> dict[tuple[str, int], list]:
    eng = FeatureEngine()
    out = {}
    for sym in SYMBOLS:
        series = [t for t in ticks if t.symbol == sym]
        row = eng.add_symbol(sym)
        values = eng.update_trades(np.full(len(series), row, dtype=np.int64),
                                   np.array([t.price for t in series]), np.array([t.size for t in series]))
        for i, v in enumerate(values.tolist()):
            out[(sym, i + 1)] = [x if x == x else None for x in v]
    return out


async def _publish(bus: KafkaBus, ticks: list[Tick]) -> None:
    for start in range(0, len(ticks), 2000):
        chunk = ticks[start:start + 2000]
        await bus.publish_batch("ticks.v1", [t.symbol.encode() for t in chunk], [encode(t) for t in chunk])
    await bus.flush()


async def _features(bus: KafkaBus) -> list[FeatureVector]:
    dec = msgspec.json.Decoder(FeatureVector)
    return [dec.decode(r.value) for r in await bus.read_all("features.v1", 60)]


async def test_kill_9_on_the_batch_path_keeps_exactly_once(kafka_url, processes):
    ticks = _ticks()
    expected = _expected(ticks)
    bus = KafkaBus(kafka_url)
    await bus.ensure_topics(["ticks.v1", "features.v1"])
    half = len(ticks) // 2
    await _publish(bus, ticks[:half])
    args = ("consume", "features", "--bus", kafka_url, "--exactly-once", "--max-records", "200")
    first = processes.start(*args, name="eos-a")

    async def some() -> bool:
        return len(await _features(bus)) >= half // 3

    await wait_until(some, 120, what="features from the first instance")
    await asyncio.sleep(1.5)  # a periodic snapshot lands mid-stream
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    await _publish(bus, ticks[half:])
    second = processes.start(*args, name="eos-b")

    async def every() -> bool:
        return len(await _features(bus)) >= len(ticks)

    await wait_until(every, 240, what="features for every tick")
    assert processes.stop(second) == 0, processes.log(second)[-3000:]
    live = await _features(bus)
    assert len(live) == len(ticks), f"{len(live) - len(ticks)} duplicates under read_committed"
    names = FeatureEngine().names
    for f in live:
        want = expected[(f.symbol, f.seq)]
        assert list(f.values) == names
        assert list(f.values.values()) == want, (f.symbol, f.seq)
    assert {(f.symbol, f.seq) for f in live} == set(expected)
    await bus.close()


async def test_publish_batch_lands_each_key_where_publish_does(kafka_url):
    bus = KafkaBus(kafka_url)
    await bus.ensure_topics(["signals.v1", "features.v1"])
    keys = [f"K{i}".encode() for i in range(40)]
    for k in keys:
        await bus.publish("signals.v1", k, b"one")
    await bus.publish_batch("features.v1", keys * 3, [b"%d" % i for i in range(len(keys) * 3)])
    await bus.flush()
    one = {r.key: r.partition for r in await bus.read_all("signals.v1", 30)}
    batch = await bus.read_all("features.v1", 30)
    assert len(batch) == 120
    assert {r.key: r.partition for r in batch} == {k: p % 6 for k, p in ((k, _murmur(k)) for k in keys)}
    assert len(set(one.values())) > 1  # signals.v1 has 3 partitions, features.v1 6: both by murmur2
    assert all(one[k] == _murmur(k) % 3 for k in keys)
    by_key: dict[bytes, list[int]] = {}
    for r in sorted(batch, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(r.key, []).append(int(r.value))
    assert all(v == sorted(v) for v in by_key.values()), "per key, the batch order is kept"
    await bus.close()


def _murmur(key: bytes) -> int:
    from aiokafka.partitioner import murmur2

    return murmur2(key) & 0x7FFFFFFF
