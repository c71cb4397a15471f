"""Features consumer state on the real broker: kill -9 and restart, and a second group member.

Inputs are real daily closes of 20 equities (tests/data/stock_prices_20.csv)
published as bars keyed by symbol, so they spread over every partition.
The reference is the offline CLI over the same file: the values published by
the live consumers must equal it for every (symbol, seq), whatever happened
to the processes in between.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import msgspec
import pytest

from schemas.events import Bar, FeatureVector
from streaming.bus.kafka import KafkaBus
from streaming.codec import encode
from tests.integration.conftest import ROOT, wait_until

pytestmark = pytest.mark.kafka

PRICES = Path(__file__).resolve().parents[1] / "data" / "stock_prices_20.csv"
DAYS = 260


def _bars(tmp_path: Path) -> tuple[list[Bar], Path]:
    """The last DAYS rows as bars, and the same rows as a long bars CSV for the offline CLI."""
    with PRICES.open() as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[-DAYS:]
    bars: list[Bar] = []
    for row in body:
        ts = int(datetime.fromisoformat(row[0]).replace(tzinfo=timezone.utc).timestamp() * 1e9)
        for sym, cell in zip(header[1:], row[1:]):
            if cell:
                p = float(cell)
                bars.append(Bar(symbol=sym, ts_event=ts, open=p, high=p, low=p, close=p, volume=1000.0))
    long_csv = tmp_path / "bars.csv"
    with long_csv.open("w") as fh:
        fh.write("ts,symbol,open,high,low,close,volume\n")
        for b in bars:
            fh.write(f"{b.ts_event},{b.symbol},{b.open!r},{b.high!r},{b.low!r},{b.close!r},{b.volume!r}\n")
    return bars, long_csv


def _offline_features(long_csv: Path) -> dict[tuple[str, int], dict]:
    out = subprocess.run([sys.executable, "-m", "ticktide.cli", "features", "--input", str(long_csv),
                          "--format", "jsonl"], cwd=ROOT, capture_output=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    expected: dict[tuple[str, int], dict] = {}
    counts: dict[str, int] = {}
    for line in out.stdout.splitlines():
        rec = json.loads(line)
        counts[rec["symbol"]] = counts.get(rec["symbol"], 0) + 1
        expected[(rec["symbol"], counts[rec["symbol"]])] = rec
    return expected


async def _publish(bus: KafkaBus, bars: list[Bar]) -> None:
    for b in bars:
        await bus.publish("bars.v1", b.symbol.encode(), encode(b))
    await bus.flush()


async def _features(bus: KafkaBus) -> list[FeatureVector]:
    return [msgspec.json.decode(r.value, type=FeatureVector) for r in await bus.read_all("features.v1", 30)]


def _assert_matches_offline(live: list[FeatureVector], expected: dict[tuple[str, int], dict]) -> None:
    seen: dict[tuple[str, int], dict] = {}
    for f in live:
        key = (f.symbol, f.seq)
        assert key in expected, f"unexpected feature vector {key}"
        if key in seen:
            assert f.values == seen[key], f"a re-published {key} differs from the first"
        seen[key] = f.values
        want = expected[key]
        for name, value in f.values.items():
            assert value == want[name] or (value is None and want[name] is None), (key, name, value, want[name])
    assert set(seen) == set(expected), f"missing: {sorted(set(expected) - set(seen))[:5]}"


async def _setup(kafka_url: str, tmp_path: Path) -> tuple[list[Bar], dict[tuple[str, int], dict], KafkaBus]:
    """The bars, the features computed offline from them, and a bus with the topics."""
    bars, long_csv = _bars(tmp_path)
    expected = _offline_features(long_csv)
    bus = KafkaBus(kafka_url)
    await bus.ensure_topics(["bars.v1", "ticks.v1", "features.v1"])
    return bars, expected, bus


async def _enough(bus: KafkaBus, n: int) -> bool:
    return len({(f.symbol, f.seq) for f in await _features(bus)}) >= n


@pytest.mark.parametrize("mode", ["at-least-once", "exactly-once"])
async def test_kill_9_and_restart_publishes_the_uninterrupted_values(kafka_url, processes, tmp_path, mode):
    bars, expected, bus = await _setup(kafka_url, tmp_path)
    half = len(bars) // 2
    await _publish(bus, bars[:half])
    eos = ["--exactly-once"] if mode == "exactly-once" else []
    first = processes.start("consume", "features", "--bus", kafka_url, *eos, name="features-a")
    await wait_until(lambda: _enough(bus, half // 2), 120, what="features from the first instance")
    await asyncio.sleep(3)  # let at least one periodic snapshot land mid-stream
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    await _publish(bus, bars[half:])
    second = processes.start("consume", "features", "--bus", kafka_url, *eos, name="features-b")
    await wait_until(lambda: _enough(bus, len(expected)), 180, what="features for every bar")
    assert processes.stop(second) == 0, processes.log(second)[-3000:]
    live = await _features(bus)
    _assert_matches_offline(live, expected)
    if eos:  # read_committed readers see every vector exactly once, despite the kill
        assert len(live) == len(expected), f"{len(live) - len(expected)} duplicates"
    await bus.close()


async def test_a_second_member_takes_over_partitions_and_their_state(kafka_url, processes, tmp_path):
    bars, expected, bus = await _setup(kafka_url, tmp_path)
    third = len(bars) // 3
    await _publish(bus, bars[:third])
    a = processes.start("consume", "features", "--bus", kafka_url, name="member-a")
    await wait_until(lambda: _enough(bus, third), 120, what="member a catching up")
    b = processes.start("consume", "features", "--bus", kafka_url, name="member-b")
    await wait_until(lambda: _assigned(processes.log(b)), 60, what="member b getting partitions")
    await _publish(bus, bars[third:2 * third])
    await wait_until(lambda: _enough(bus, 2 * third), 120, what="both members working")
    assert processes.stop(a) == 0, processes.log(a)[-3000:]  # b takes over a's partitions and state
    await _publish(bus, bars[2 * third:])
    await wait_until(lambda: _enough(bus, len(expected)), 180, what="member b finishing alone")
    assert processes.stop(b) == 0, processes.log(b)[-3000:]
    assert "assigned" in processes.log(a) and "assigned" in processes.log(b)
    _assert_matches_offline(await _features(bus), expected)
    await bus.close()


async def _assigned(log: str) -> bool:
    return "features assigned ['" in log
