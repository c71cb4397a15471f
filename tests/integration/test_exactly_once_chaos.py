"""Exactly-once under the worst timing, on the real broker.

Inputs are the real Binance BTCUSDT trades and book tickers of tests/data
(spot_btcusdt_20240808, see SOURCES.md) replayed as four symbols at scaled
price levels: ~151,000 ticks over the 6 partitions of ticks.v1. The reference
is ``ticktide features --input`` over the same ticks, offline.

- ``test_kill_9_right_after_restore_and_mid_transaction``: an
  ``--exactly-once`` features consumer is SIGKILLed again and again, 0-1.5 s
  after it logged that its state was restored (before or while it first
  emits: the moment a crash loop or a rebalance lands) and in the middle of
  a transaction, half of the rounds with the CPU starved by busy processes
  beside it. The read_committed output must then hold every vector exactly
  once, with the offline values.
- ``test_a_frozen_instance_is_fenced_when_it_comes_back``: an instance is
  frozen (SIGSTOP) past its session timeout while a second one takes its
  partitions, then thawed: its next commit is refused (fenced), it rejoins,
  and the output holds no duplicate.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from producers.venues import get_adapter
from schemas.events import FeatureVector, Tick
from streaming.bus.kafka import KafkaBus
from streaming.codec import encode
from tests.integration.conftest import ROOT, wait_until

pytestmark = pytest.mark.kafka

DATA = Path(__file__).resolve().parents[1] / "data" / "spot_btcusdt_20240808.ndjson.gz"
COPIES = 4  # BTCUSDT plus three copies at other price levels: every partition sees some symbols


def real_ticks(copies: int = COPIES) -> list[Tick]:
    """The recording's trades and book tickers through the Binance adapter, once per copy."""
    adapter = get_adapter("binance")
    base: list[Tick] = []
    with gzip.open(DATA, "rt") as f:
        for line in f:
            ns, frame = line.split(" ", 1)
            if '"btcusdt@trade"' in frame or '"btcusdt@bookTicker"' in frame:
                base.extend(adapter.parse(frame.strip(), int(ns)).ticks)
    out: list[Tick] = []
    for tick in base:  # interleaved, as a live feed of several symbols arrives
        for k in range(copies):
            if k == 0:
                out.append(tick)
                continue
            scale = 1.0 + 0.25 * k
            out.append(msgspec.structs.replace(
                tick, symbol=f"BTC{k}USDT",
                price=None if tick.price is None else tick.price * scale,
                bid=None if tick.bid is None else tick.bid * scale,
                ask=None if tick.ask is None else tick.ask * scale))
    return out


def offline_vectors(ticks: list[Tick], tmp: Path) -> dict[tuple[str, int], dict]:
    """``ticktide features --input`` over the ticks: (symbol, seq) -> the trade row's values."""
    path = tmp / "ticks.jsonl"
    path.write_bytes(b"\n".join(encode(t) for t in ticks) + b"\n")
    out = subprocess.run([sys.executable, "-m", "ticktide.cli", "features", "--input", str(path)],
                         cwd=ROOT, capture_output=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    expected: dict[tuple[str, int], dict] = {}
    for line in out.stdout.splitlines():
        row = json.loads(line)
        if row["kind"] == "trade":
            expected[(row["symbol"], row["seq"])] = row
    return expected


async def publish(bus: KafkaBus, ticks: list[Tick]) -> None:
    for start in range(0, len(ticks), 5000):
        chunk = ticks[start:start + 5000]
        await bus.publish_batch("ticks.v1", [t.symbol.encode() for t in chunk], [encode(t) for t in chunk])
    await bus.flush()


async def committed_vectors(bus: KafkaBus) -> list[FeatureVector]:
    dec = msgspec.json.Decoder(FeatureVector)
    return [dec.decode(r.value) for r in await bus.read_all("features.v1", 120)]


def compare(live: list[FeatureVector], expected: dict[tuple[str, int], dict]) -> tuple[int, int, list]:
    """(missing, duplicates, differing) of the live vectors against the offline rows."""
    seen: dict[tuple[str, int], int] = {}
    differing = []
    for f in live:
        key = (f.symbol, f.seq)
        seen[key] = seen.get(key, 0) + 1
        want = expected.get(key)
        if want is None or any(want[name] != value for name, value in f.values.items()):
            differing.append(key)
    missing = len(set(expected) - set(seen))
    duplicates = sum(n - 1 for n in seen.values())
    return missing, duplicates, differing


def burn_cpu() -> list[subprocess.Popen]:
    """One busy process per core: the consumer gets a fraction of a CPU (bugs here showed only under load)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]


def stop_burning(burners: list[subprocess.Popen]) -> None:
    for p in burners:
        p.kill()
        p.wait(10)


async def logged(processes, proc, pattern: str, timeout: float, after: int = 0) -> int:
    """Wait until ``pattern`` appears in the process's log past character ``after``; where it ends."""
    rx = re.compile(pattern)

    async def found():
        if proc.poll() is not None:
            raise AssertionError(f"the consumer exited ({proc.returncode}):\n{processes.log(proc)[-3000:]}")
        m = rx.search(processes.log(proc), after)
        return m.end() if m else None

    return await wait_until(found, timeout, interval=0.05, what=f"{pattern!r} in the consumer's log")


RESTORED = r"restored \d+ partition"


async def test_kill_9_right_after_restore_and_mid_transaction(kafka_url, processes, tmp_path):
    ticks = real_ticks()
    expected = offline_vectors(ticks, tmp_path)
    bus = KafkaBus(kafka_url)
    await bus.ensure_topics(["ticks.v1", "features.v1"])
    rng = random.Random(22)
    args = ("consume", "features", "--bus", kafka_url, "--exactly-once", "--instance-id", "chaos")
    # (when, CPU starved): right after the restore, or once outputs flow (a transaction is open)
    rounds = [("restored", False), ("restored", False), ("restored", False), ("emitting", False),
              ("restored", True), ("restored", True), ("restored", True), ("emitting", True)]
    chunk = len(ticks) // (len(rounds) + 1) + 1  # every instance finds new inputs when it starts
    kills = []
    burners: list[subprocess.Popen] = []
    try:
        for i, (when, starved) in enumerate(rounds):
            await publish(bus, ticks[i * chunk:(i + 1) * chunk])
            if starved and not burners:
                burners = burn_cpu()
            before = len(await committed_vectors(bus))
            proc = processes.start(*args, name=f"chaos-{i}")
            await logged(processes, proc, RESTORED, 180)
            t0 = time.monotonic()
            if when == "emitting":
                await wait_until(lambda: _more_than(bus, before), 120, interval=0.1, what="new output")
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            kills.append(f"{when}{' starved' if starved else ''} +{time.monotonic() - t0:.2f}s")
    finally:
        stop_burning(burners)
    await publish(bus, ticks[len(rounds) * chunk:])
    final = processes.start(*args, name="chaos-final")
    await wait_until(lambda: _at_least(bus, len(expected)), 300, interval=1.0, what="every feature vector")
    await asyncio.sleep(2)  # anything still to come (a duplicate) arrives now
    assert processes.stop(final) == 0, processes.log(final)[-3000:]
    live = await committed_vectors(bus)
    missing, duplicates, differing = compare(live, expected)
    assert (missing, duplicates, len(differing)) == (0, 0, 0), (
        f"{missing} missing, {duplicates} duplicates, {len(differing)} differing (e.g. {differing[:3]}) "
        f"after kills {kills}")
    await bus.close()


async def _more_than(bus: KafkaBus, n: int) -> bool:
    return len(await committed_vectors(bus)) > n


async def _at_least(bus: KafkaBus, n: int) -> bool:
    return len(await committed_vectors(bus)) >= n


async def test_a_frozen_instance_is_fenced_when_it_comes_back(kafka_url, processes, tmp_path):
    ticks = real_ticks(copies=2)
    expected = offline_vectors(ticks, tmp_path)
    bus = KafkaBus(kafka_url)
    await bus.ensure_topics(["ticks.v1", "features.v1"])
    head = len(ticks) // 4
    await publish(bus, ticks[:head])
    common = ("consume", "features", "--bus", kafka_url, "--exactly-once")
    # a long transaction: whenever a is frozen, it holds processed inputs it has not committed
    a = processes.start(*common, "--instance-id", "zombie-a", "--commit-interval", "30", name="zombie-a")
    await logged(processes, a, RESTORED, 180)
    await asyncio.sleep(3)  # a processes the first ticks: its transactions are open

    async def feed() -> None:  # a steady stream
        for start in range(head, len(ticks), 1000):
            await publish(bus, ticks[start:start + 1000])
            await asyncio.sleep(0.05)

    feeder = asyncio.create_task(feed())
    await asyncio.sleep(2)
    a.send_signal(signal.SIGSTOP)
    try:
        b = processes.start(*common, "--instance-id", "zombie-b", name="zombie-b")
        await logged(processes, b, RESTORED, 180)  # after a's session timed out: b owns every partition
        await asyncio.sleep(3)
    finally:
        a.send_signal(signal.SIGCONT)
    fenced = await logged(processes, a, r"fenced", 60)  # its next commit was refused
    await logged(processes, a, RESTORED, 120, after=fenced)  # and it rejoined the group
    await feeder
    await wait_until(lambda: _at_least(bus, len(expected)), 300, interval=1.0, what="every feature vector")
    await asyncio.sleep(2)
    assert processes.stop(a) == 0, processes.log(a)[-3000:]
    assert processes.stop(b) == 0, processes.log(b)[-3000:]
    live = await committed_vectors(bus)
    missing, duplicates, differing = compare(live, expected)
    assert (missing, duplicates, len(differing)) == (0, 0, 0), (
        f"{missing} missing, {duplicates} duplicates, {len(differing)} differing (e.g. {differing[:3]})")
    await bus.close()
