"""Restore time of a consumer's state on a real broker (not a test).

    scripts/kafka-local start
    .venv/bin/python bench/bench_restore.py [--bus kafka://127.0.0.1:9092] [--keys 10000,100000,1000000]

For each key count a fresh changelog (a topic prefix of its own) is filled
with one record per key, spread by key over its 6 partitions as the features
consumer writes them: each record is the real changelog record of a symbol
of the features consumer (its state after the first 300 BTCUSDT trades of
tests/data, ~3.5 KB). Then the restore the runtime does on assignment
(``streaming.recovery.Recovery.read``: read the changelog partitions,
restore each record into the processor, keep the offsets) runs for 1
partition and for all 6, into:

* ``features``: the features consumer (decode, load into the Numba state
  arrays), up to ``--features-max`` keys (its state arrays need ~3.4 KB a key);
* ``runtime``: a processor that only counts: what the runtime itself costs.

Printed: seconds, records/s and MB/s per case, the ratio of 1 partition to 6
(expected ≈ 1/6: an instance reads only what it was assigned), and seconds
per 100k keys against the key count (expected flat: linear in the state).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from consumers.features.processor import FeaturesProcessor  # noqa: E402
from schemas.topics import changelog_topic  # noqa: E402
from streaming import changelog  # noqa: E402
from streaming.bus.kafka import KafkaBus  # noqa: E402
from streaming.bus.memory import partition_for  # noqa: E402
from streaming.processor import Envelope, Processor, ProcessResult  # noqa: E402
from streaming.recovery import Recovery  # noqa: E402
from tests.real_features import btcusdt_trades  # noqa: E402

PARTITIONS = 6


class Counting(Processor):
    """Restores nothing but counts: the runtime's own cost of a restore."""

    name = "features"
    inputs = ("ticks.v1",)
    stateful = True

    def __init__(self) -> None:
        self.items = 0

    def process(self, batch) -> ProcessResult:
        return ProcessResult()

    def restore_item(self, partition: int, key: str, data: bytes) -> None:
        self.items += 1


def real_item_state() -> bytes:
    proc = FeaturesProcessor()
    trades = btcusdt_trades(300)
    proc.process([Envelope("ticks.v1", 0, i, b"BTCUSDT", t) for i, t in enumerate(trades)])
    return next(iter(proc.dirty_items(0).values()))


async def fill(bus: KafkaBus, topic: str, keys: int, state: bytes) -> None:
    chunk = 2000
    for start in range(0, keys, chunk):
        by_partition: dict[int, tuple[list, list]] = {}
        for i in range(start, min(keys, start + chunk)):
            symbol = f"S{i:07d}USDT"
            p = partition_for(symbol.encode(), PARTITIONS, 0)
            item = f"tick|{symbol}|"
            value = changelog.encode(changelog.Snapshot(p, {"ticks.v1": 1000 + i}, state, item))
            ks, vs = by_partition.setdefault(p, ([], []))
            ks.append(changelog.record_key(p, item))
            vs.append(value)
        for p, (ks, vs) in by_partition.items():
            await bus.publish_batch(topic, ks, vs, partition=p)
        await bus.flush()


async def restore(bus: KafkaBus, topic: str, processor: Processor, partitions: list[int]) -> tuple[float, int, int]:
    recovery = Recovery(bus, processor, topic, "bench")
    t0 = time.perf_counter()
    restored = await recovery.read(partitions)
    seconds = time.perf_counter() - t0
    return seconds, sum(r.records for r in restored.values()), sum(len(r.items) for r in restored.values())


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


async def main_async(args: argparse.Namespace) -> int:
    state = real_item_state()
    record_bytes = len(changelog.encode(changelog.Snapshot(0, {"ticks.v1": 1}, state, "tick|S0000000USDT|")))
    print(f"CPU {cpu_model()}, {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}; one record {record_bytes:,} "
          f"bytes (the features consumer's state of one symbol)")
    print("| keys | processor | partitions | records | seconds | records/s | MB/s | 1 / 6 partitions |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    per_100k: list[tuple[int, str, float]] = []
    for keys in [int(k) for k in args.keys.split(",")]:
        url = f"{args.bus}?prefix=restore{uuid.uuid4().hex[:6]}."
        bus = KafkaBus(url)
        topic = changelog_topic("features", "bench").name
        await bus.ensure_topics([topic])
        t0 = time.perf_counter()
        await fill(bus, topic, keys, state)
        print(f"(filled {keys:,} keys in {time.perf_counter() - t0:.1f} s)", file=sys.stderr)
        kinds = ["runtime"] + (["features"] if keys <= args.features_max else [])
        for kind in kinds:
            times = {}
            for parts in ([0], list(range(PARTITIONS))):
                best = None
                for _ in range(args.repeat):
                    proc = Counting() if kind == "runtime" else FeaturesProcessor(capacity=keys // len(parts) + 64)
                    seconds, records, items = await restore(bus, topic, proc, parts)
                    best = seconds if best is None else min(best, seconds)
                times[len(parts)] = best
                mb = records * record_bytes / 1e6
                ratio = f"{times[1] / times[PARTITIONS]:.2f}" if len(parts) == PARTITIONS else ""
                print(f"| {keys:,} | {kind} | {len(parts)} | {records:,} | {best:.2f} | {records / best:,.0f} | "
                      f"{mb / best:.0f} | {ratio} |", flush=True)
            per_100k.append((keys, kind, times[PARTITIONS] / keys * 100_000))
        admin = await bus._admin()
        await admin.delete_topics([bus.settings.physical(topic)])
        await bus.close()
    print("\nseconds per 100k keys, all 6 partitions (flat = linear in the state):")
    for keys, kind, s in per_100k:
        print(f"  {kind:9s} {keys:>10,} keys: {s:.2f} s")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bus", default=os.environ.get("TICKTIDE_BENCH_BUS") or "kafka://127.0.0.1:9092")
    ap.add_argument("--keys", default="10000,100000,1000000")
    ap.add_argument("--features-max", type=int, default=100_000,
                    help="largest key count restored into the features consumer itself")
    ap.add_argument("--repeat", type=int, default=2)
    return asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
