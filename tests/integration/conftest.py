"""Fixtures for tests against the real local Kafka broker (scripts/kafka-local).

These tests fail, never skip, when the broker is unreachable: `make test`
starts it. Set TICKTIDE_SKIP_KAFKA=1 to skip them deliberately on a machine
without Java.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_URL = "kafka://127.0.0.1:9092"


def _broker_url() -> str:
    return os.environ.get("TICKTIDE_TEST_KAFKA", DEFAULT_URL)


async def _probe(url: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    from streaming.bus.kafka import KafkaSettings

    settings = KafkaSettings.from_url(url)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap, request_timeout_ms=5000)
    await asyncio.wait_for(admin.start(), 15)
    try:
        await asyncio.wait_for(admin.list_topics(), 10)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def kafka_broker() -> str:
    """The broker's base URL; fails the test when it does not answer."""
    if os.environ.get("TICKTIDE_SKIP_KAFKA") == "1":
        pytest.skip("TICKTIDE_SKIP_KAFKA=1")
    url = _broker_url()
    try:
        asyncio.run(_probe(url))
    except Exception as exc:  # noqa: BLE001 - any failure means no broker
        pytest.fail(f"Kafka broker at {url} is not reachable ({type(exc).__name__}: {exc}); "
                    "start it with scripts/kafka-local start or run `make test`")
    return url


@pytest.fixture
def kafka_url(kafka_broker: str) -> str:
    """A bus URL with a topic prefix of its own, so tests never see each other's data."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    sep = "&" if "?" in kafka_broker else "?"
    return f"{kafka_broker}{sep}prefix={prefix}"


def topic_prefix(url: str) -> str:
    return url.split("prefix=", 1)[1].split("&", 1)[0]


class Processes:
    """Starts ``ticktide`` subcommands as real OS processes and cleans them up."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []

    def start(self, *args: str, name: str | None = None, env: dict | None = None) -> subprocess.Popen:
        name = name or args[0]
        log = open(self.tmp / f"{name}-{len(self.procs)}.log", "wb")
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **(env or {})}
        proc = subprocess.Popen([sys.executable, "-m", "ticktide.cli", *args], cwd=ROOT, env=full_env,
                                stdout=log, stderr=subprocess.STDOUT)
        proc.log_path = log.name  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def log(self, proc: subprocess.Popen) -> str:
        return Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError(f"process did not stop within {timeout}s:\n{self.log(proc)[-3000:]}")

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def processes(tmp_path: Path):
    procs = Processes(tmp_path)
    yield procs
    procs.cleanup()


async def wait_until(predicate, timeout: float, interval: float = 0.25, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
