"""The walking skeleton on the real broker, every stage its own OS process.

replay (recorded Binance session) -> ticks.v1 -> features -> features.v1 -> signals -> signals.v1
and a Kafka client that is not ours (kcat) reads signals.v1. The live signals
must equal what the offline CLIs compute from the same recording.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from schemas.events import DeadLetter, FeatureVector, Signal
from streaming.bus.kafka import KafkaBus
from tests.integration.conftest import ROOT, topic_prefix, wait_until

pytestmark = pytest.mark.kafka

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDING = DATA / "spot_btcusdt_20240808.ndjson.gz"
TRADES_IN_RECORDING = 9_757


def _offline(*args: str) -> bytes:
    out = subprocess.run([sys.executable, "-m", "ticktide.cli", *args], cwd=ROOT, capture_output=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    return out.stdout


def _signal_key(sig: Signal) -> tuple:
    return (sig.symbol, sig.type, sig.seq, sig.action, sig.urgency, round(sig.strength, 9))


async def _count(bus: KafkaBus, topic: str) -> int:
    return len(await bus.read_all(topic, timeout_s=20))


def _kcat_read(bootstrap: str, topic: str) -> list[bytes]:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed (scripts/run-tests installs Debian's kcat)"
    out = subprocess.run([kcat, "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q",
                          "-f", "%s\n"], capture_output=True, timeout=60, check=True)
    return [line for line in out.stdout.split(b"\n") if line.strip()]


async def test_recording_through_separate_processes_matches_offline(kafka_url, processes, tmp_path):
    bus = KafkaBus(kafka_url)
    await bus.ensure_topics(["ticks.v1", "bars.v1", "features.v1", "signals.v1", "dlq.v1", "alerts.v1"])
    # a poison message ahead of the stream: dead-lettered, and everything after it still flows
    await bus.publish("ticks.v1", b"BTCUSDT", b'{"symbol": "BTCUSDT", "kind": "nonsense"}')
    await bus.flush()
    features = processes.start("consume", "features", "--bus", kafka_url, name="features")
    signals = processes.start("consume", "signals", "--bus", kafka_url, name="signals")
    replay = processes.start("replay", str(RECORDING), "--venue", "binance", "--speed", "max",
                             "--bus", kafka_url, "--recv-time", "recorded", name="replay")
    assert replay.wait(120) == 0, processes.log(replay)[-3000:]

    await wait_until(lambda: _count_at_least(bus, "features.v1", TRADES_IN_RECORDING), 180,
                     what="features for every trade")
    # offline: the same recording through normalize -> features -> signals, no bus
    ticks = tmp_path / "ticks.jsonl"
    ticks.write_bytes(_offline("normalize", "--venue", "binance", str(RECORDING)))
    feats = tmp_path / "features.jsonl"
    feats.write_bytes(_offline("features", "--input", str(ticks), "--format", "jsonl"))
    expected = [msgspec.json.decode(line, type=Signal) for line in
                _offline("signals", "--input", str(feats)).splitlines() if line.strip()]
    assert expected, "the recording should produce signals"

    await wait_until(lambda: _count_at_least(bus, "signals.v1", len(expected)), 120, what="live signals")
    await asyncio.sleep(2)  # anything extra would show up now
    live_feats = [msgspec.json.decode(r.value, type=FeatureVector) for r in await bus.read_all("features.v1")]
    seqs = [f.seq for f in live_feats if f.symbol == "BTCUSDT"]
    assert seqs == list(range(1, TRADES_IN_RECORDING + 1)), "per-symbol order preserved, nothing lost or doubled"

    live = [msgspec.json.decode(r.value, type=Signal) for r in await bus.read_all("signals.v1")]
    assert sorted(map(_signal_key, live)) == sorted(map(_signal_key, expected))

    # a client that is not ours reads the topic and every message parses as a v1 Signal
    raw = _kcat_read(bus.settings.bootstrap, topic_prefix(kafka_url) + "signals.v1")
    assert len(raw) == len(live)
    for line in raw:
        msgspec.json.decode(line, type=Signal)

    letters = [msgspec.json.decode(r.value, type=DeadLetter) for r in await bus.read_all("dlq.v1")]
    assert [(d.stage, d.source_topic, d.raw) for d in letters] == [
        ("features:decode", "ticks.v1", b'{"symbol": "BTCUSDT", "kind": "nonsense"}')]

    # our own CLI subscriber tails the topic as JSON lines
    tail = _offline("subscribe", "signals.v1", "--bus", kafka_url, "--from-beginning",
                    "--limit", str(len(live)), "--duration", "60")
    assert sorted(map(_signal_key, (msgspec.json.decode(x, type=Signal) for x in tail.splitlines()))) == \
        sorted(map(_signal_key, live))

    for proc in (features, signals):
        assert processes.stop(proc) == 0, processes.log(proc)[-3000:]
    await bus.close()


async def _count_at_least(bus: KafkaBus, topic: str, n: int) -> bool:
    return await _count(bus, topic) >= n
