"""Private Kafka brokers a test may kill and restart (scripts/kafka-local on free ports).

The shared test broker is never stopped: outage tests start their own on a
free port pair, with its data kept across a kill so a restart brings the
same topics and offsets back, like a crashed broker restarting on its disk.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import msgspec

from schemas.events import Tick
from streaming.bus.kafka import KafkaBus
from tests.integration.conftest import ROOT

SCRIPT = ROOT / "scripts" / "kafka-local"


def free_port_pair() -> int:
    """A port p with p and p+1 both free (listener and controller)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
        except (OSError, OverflowError):  # taken, or port + 1 past 65535
            continue
        return port
    raise RuntimeError("no free pair of ports")


class PrivateBroker:
    def __init__(self, data: Path, port: int | None = None) -> None:
        self.port = port or free_port_pair()
        self.env = {**os.environ, "KAFKA_PORT": str(self.port), "KAFKA_CONTROLLER_PORT": str(self.port + 1),
                    "KAFKA_DATA_DIR": str(data), "KAFKA_KEEP_DATA": "1", "KAFKA_HEAP_OPTS": "-Xms128m -Xmx256m"}
        self.url = f"kafka://127.0.0.1:{self.port}"

    def _run(self, action: str, timeout: float = 150) -> str:
        out = subprocess.run([str(SCRIPT), action], env=self.env, capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"kafka-local {action}: {out.stderr[-3000:]}"
        return out.stderr + out.stdout

    def start(self) -> None:
        self._run("start")

    def kill(self) -> None:
        """SIGKILL: a crash; the data stays for the next start."""
        self._run("kill", 60)

    def remove(self) -> None:
        try:
            subprocess.run([str(SCRIPT), "stop"], env={**self.env, "KAFKA_KEEP_DATA": "0"}, capture_output=True,
                           timeout=60)
        except subprocess.TimeoutExpired:
            pass
        subprocess.run(["pkill", "-KILL", "-f", f"run-{self.port}/server.properties"], capture_output=True, timeout=30)


def free_port_run(n: int) -> int:
    """A port p with p .. p+n-1 all free (a cluster's listeners and controllers)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + n > 65535:
            continue
        try:
            for q in range(port, port + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", q))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no {n} free ports in a row")


class PrivateCluster:
    """``scripts/kafka-local start --brokers N`` on free loopback ports; nodes killed and restarted by id."""

    def __init__(self, data: Path, brokers: int = 3) -> None:
        self.brokers = brokers
        self.port = free_port_run(2 * brokers)
        self.env = {**os.environ, "KAFKA_PORT": str(self.port), "KAFKA_DATA_DIR": str(data),
                    "KAFKA_HEAP_OPTS": "-Xms128m -Xmx256m"}
        self.url = "kafka://" + ",".join(f"127.0.0.1:{self.port + 2 * i}" for i in range(brokers))

    def _run(self, *args: str, keep: bool = False, timeout: float = 240) -> str:
        env = {**self.env, "KAFKA_KEEP_DATA": "1" if keep else "0"}
        out = subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"kafka-local {' '.join(args)}: {out.stderr[-3000:]}"
        return out.stderr + out.stdout

    def start(self) -> None:
        self._run("start", "--brokers", str(self.brokers))

    def kill(self, node: int) -> None:
        self._run("kill", "--node", str(node), keep=True)

    def restart(self, node: int) -> None:
        self._run("start", "--node", str(node), keep=True)

    def remove(self) -> None:
        try:
            subprocess.run([str(SCRIPT), "stop"], env={**self.env, "KAFKA_KEEP_DATA": "0"}, capture_output=True,
                           timeout=120)
        except subprocess.TimeoutExpired:
            pass
        # a node that outlived its peers can wait out its controlled shutdown: never leave one running
        subprocess.run(["pkill", "-KILL", "-f", f"run-{self.port}-cluster/"], capture_output=True, timeout=30)


async def read_topic(url: str, topic: str) -> list:
    bus = KafkaBus(url)
    try:
        return await bus.read_all(topic, timeout_s=60)
    finally:
        await bus.close()


def assert_every_tick_once_in_order(records: list, recording: Path) -> None:
    """Per symbol and kind, the ticks on the topic are the offline normalizer's, in the same order."""
    out = subprocess.run([sys.executable, "-m", "ticktide.cli", "normalize", "--venue", "binance", str(recording)],
                         cwd=ROOT, capture_output=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr.decode()[-3000:]

    def streams(ticks) -> dict:
        by = defaultdict(list)
        for t in ticks:  # the receive stamp is the one field a replay may set differently
            by[(t.symbol, t.kind)].append(msgspec.json.encode(msgspec.structs.replace(t, ts_recv=0)))
        return by

    expected = streams(msgspec.json.decode(line, type=Tick) for line in out.stdout.splitlines() if line.strip())
    ordered = sorted(records, key=lambda r: (r.partition, r.offset))
    live = streams(msgspec.json.decode(r.value, type=Tick) for r in ordered)
    assert sum(map(len, live.values())) == sum(map(len, expected.values())), "ticks lost or duplicated"
    assert live.keys() == expected.keys()
    for key in expected:
        assert live[key] == expected[key], f"{key}: not every tick exactly once in order"
