"""A replicated cluster loses nothing when the leader of a ``ticks.v1`` partition dies mid-stream.

Three brokers (``scripts/kafka-local start --brokers 3``), topics created by
``ticktide topics create`` (replication factor 3, min.insync.replicas 2 from
the cluster size), a features consumer and a replay of a recorded session.
While the replay publishes, the leader of the partition carrying the stream
is killed with SIGKILL, and restarted later. Then: every recorded tick is on
``ticks.v1`` exactly once and in order, the consumer carried on without a
restart, and its features equal the offline CLI's.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from schemas.events import FeatureVector
from streaming.bus.kafka import KafkaBus, KafkaSettings
from tests.integration.brokers import PrivateCluster, assert_every_tick_once_in_order, read_topic
from tests.integration.conftest import ROOT, Processes
from tests.ops.promtest import free_port

pytestmark = pytest.mark.kafka

RECORDING = Path(__file__).resolve().parents[1] / "data" / "spot_btcusdt_20240808.ndjson.gz"


def _cli(*args: str) -> bytes:
    out = subprocess.run([sys.executable, "-m", "ticktide.cli", *args], cwd=ROOT, capture_output=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    return out.stdout


async def _busiest_partition_leader(url: str, topic: str) -> tuple[int, int]:
    """(partition, leader node id) of the partition of ``topic`` holding the most records."""
    settings = KafkaSettings.from_url(url)
    bus = KafkaBus(url)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        leaders = {p["partition"]: p["leader"] for p in described["partitions"]}
        replicas = {p["partition"]: len(p["replicas"]) for p in described["partitions"]}
    finally:
        await admin.close()
    assert set(replicas.values()) == {3}, f"{topic} is not replicated three times: {replicas}"
    counts: dict[int, int] = {}
    for r in await bus.read_all(topic, timeout_s=60):
        counts[r.partition] = counts.get(r.partition, 0) + 1
    await bus.close()
    partition = max(counts, key=counts.get)
    return partition, leaders[partition]


def _metric(port: int, name: str) -> float:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:  # noqa: S310
        text = resp.read().decode()
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines() if line.startswith(name + "{"))


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.5)


@pytest.mark.timeout(480)
def test_leader_killed_mid_stream_loses_nothing(kafka_broker, processes: Processes, tmp_path: Path):
    cluster = PrivateCluster(tmp_path / "cluster")
    cluster.start()
    try:
        _scenario(cluster, processes, tmp_path)
    finally:
        cluster.remove()


def _scenario(cluster: PrivateCluster, processes: Processes, tmp_path: Path) -> None:
    url = cluster.url
    _cli("topics", "create", "--bus", url)
    m_features, m_replay = free_port(), free_port()
    features = processes.start("consume", "features", "--bus", url, "--metrics-port", str(m_features),
                               name="features")
    # paced, so the stream is still flowing when the leader dies
    replay = processes.start("replay", str(RECORDING), "--venue", "binance", "--speed", "20", "--bus", url,
                             "--recv-time", "recorded", "--metrics-port", str(m_replay), name="replay")
    _wait(lambda: _metric(m_replay, "ticktide_producer_ticks_total") >= 2000, 120, "the replay publishing")
    partition, leader = asyncio.run(_busiest_partition_leader(url, "ticks.v1"))
    cluster.kill(leader)
    killed_at = _metric(m_replay, "ticktide_producer_ticks_total")
    time.sleep(10)
    assert replay.poll() is None and features.poll() is None
    cluster.restart(leader)

    assert replay.wait(300) == 0, processes.log(replay)[-3000:]
    records = asyncio.run(read_topic(url, "ticks.v1"))
    assert_every_tick_once_in_order(records, RECORDING)

    # the consumer carried on by itself: features for every trade, equal to the offline CLI's
    ticks = tmp_path / "ticks.jsonl"
    ticks.write_bytes(_cli("normalize", "--venue", "binance", str(RECORDING)))
    # the offline CLI writes one flat record per tick (quotes too); the consumer one vector per trade
    offline = [rec for rec in (json.loads(line) for line in
                               _cli("features", "--input", str(ticks), "--format", "jsonl").splitlines()
                               if line.strip()) if rec["kind"] == "trade"]
    assert len(offline) > 9000

    def live_features() -> dict:
        out = {}
        for r in asyncio.run(read_topic(url, "features.v1")):
            fv = msgspec.json.decode(r.value, type=FeatureVector)
            out[(fv.symbol, fv.seq)] = fv  # at-least-once: a replayed output is the same value
        return out

    _wait(lambda: len(live_features()) >= len(offline), 180, "features for every trade")
    live = live_features()
    assert features.poll() is None, "the consumer must carry on without a restart"
    compared = 0
    for rec in offline:
        got = live[(rec["symbol"], rec["seq"])]
        for name, value in got.values.items():
            if rec.get(name) is not None:
                assert value == pytest.approx(rec[name], rel=1e-9, abs=1e-12), (rec["symbol"], rec["seq"], name)
                compared += 1
    assert compared > len(offline)  # most vectors carry full windows
    assert processes.stop(features) == 0
    print(f"leader {leader} of ticks.v1:{partition} killed after {killed_at:.0f} ticks; "
          f"{len(records)} ticks, {len(live)} features")
