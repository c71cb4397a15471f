"""scripts/kafka-local itself: the broker every integration test runs on.

A cluster id is 22 url-safe base64 characters, so one in 64 random ids starts
with "-", which Kafka's StorageTool once read as a flag: `make test` failed on
a clean machine by chance. This starts a second broker with such an id.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.integration.brokers import SCRIPT, free_port_pair


@pytest.mark.timeout(180)
def test_broker_starts_with_a_cluster_id_that_looks_like_a_flag(kafka_broker: str, tmp_path: Path) -> None:
    # kafka_broker: the jars are resolved and Java works (the main broker answers).
    port = free_port_pair()
    env = {**os.environ, "KAFKA_PORT": str(port), "KAFKA_CONTROLLER_PORT": str(port + 1),
           "KAFKA_DATA_DIR": str(tmp_path / "data"),
           "KAFKA_CLUSTER_ID": "-AbCdEfGhIjKlMnOpQrStU", "KAFKA_HEAP_OPTS": "-Xms128m -Xmx256m"}
    try:
        started = subprocess.run([str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=150)
        assert started.returncode == 0, started.stderr[-3000:]
        status = subprocess.run([str(SCRIPT), "status"], env=env, capture_output=True, text=True, timeout=30)
        assert status.returncode == 0 and "running" in status.stdout
        meta = (tmp_path / "data" / "meta.properties").read_text()
        assert "cluster.id=-AbCdEfGhIjKlMnOpQrStU" in meta
    finally:
        subprocess.run([str(SCRIPT), "stop"], env=env, capture_output=True, timeout=60)
    status = subprocess.run([str(SCRIPT), "status"], env=env, capture_output=True, text=True, timeout=30)
    assert status.returncode == 3
