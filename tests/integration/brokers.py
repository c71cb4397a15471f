"""Private Kafka brokers a test may kill and restart (scripts/kafka-local on free ports).

The shared test broker is never stopped: outage tests start their own on a
free port pair, with its data kept across a kill so a restart brings the
same topics and offsets back, like a crashed broker restarting on its disk.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

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
        subprocess.run([str(SCRIPT), "stop"], env={**self.env, "KAFKA_KEEP_DATA": "0"}, capture_output=True,
                       timeout=60)
