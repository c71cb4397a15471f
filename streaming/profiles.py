"""Runtime profiles: the settings that trade latency for throughput, chosen by ``--profile``.

``throughput`` (the default): big batches, the producer lingers a few ms so
a batch of outputs goes out in few requests. ``latency``: small batches, no
linger, short fetch waits, so a tick's features leave as soon as they exist.
Figures: BENCHMARKS.md (bench/bench_pipeline.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    max_records: int  # records per fetched batch
    poll_timeout_ms: int  # how long a poll waits for records when there are none
    linger_ms: int  # producer: how long a record batch waits for more records
    fetch_max_wait_ms: int  # broker: how long a fetch waits for fetch_min_bytes


PROFILES = {
    "throughput": Profile(max_records=5000, poll_timeout_ms=100, linger_ms=5, fetch_max_wait_ms=100),
    "latency": Profile(max_records=500, poll_timeout_ms=20, linger_ms=0, fetch_max_wait_ms=5),
}
DEFAULT_PROFILE = "throughput"
