"""Prometheus metrics every process exports on ``/metrics``.

One definition per metric name for the whole code base: producers and
consumers import from here so two modules never register the same name.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics, start_http_server

log = logging.getLogger(__name__)

# no `<name>_created` series next to every counter and histogram: nothing here queries them and
# they double the series a scrape returns (set at import: every process that exports metrics imports this)
disable_created_metrics()

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

EVENTS_IN = Counter("ticktide_events_in_total", "Input events read, per consumer and topic", ["consumer", "topic"])
EVENTS_OUT = Counter("ticktide_events_out_total", "Events published, per component and topic", ["consumer", "topic"])
BATCH_SIZE = Histogram("ticktide_batch_size", "Records per processed batch", ["consumer"], buckets=BATCH_BUCKETS)
PROCESSING_SECONDS = Histogram(
    "ticktide_processing_seconds", "Time to decode, process, publish and commit one batch",
    ["consumer"], buckets=LATENCY_BUCKETS)
END_TO_END_SECONDS = Histogram(
    "ticktide_end_to_end_latency_seconds",
    "Wall-clock time from ingest (a tick's receive stamp) to publishing a derived event",
    ["consumer", "topic"], buckets=LATENCY_BUCKETS)
CONSUMER_LAG = Gauge("ticktide_consumer_lag", "Messages behind the end of an assigned partition",
                     ["consumer", "topic", "partition"])
DEAD_LETTERS = Counter("ticktide_dead_letters_total", "Inputs sent to dlq.v1, per stage", ["stage"])
ERRORS = Counter("ticktide_errors_total", "Inputs that failed processing, per component", ["consumer"])
STATE_BYTES = Gauge("ticktide_state_bytes", "Bytes in the last state snapshot, per consumer", ["consumer"])
SNAPSHOTS = Counter("ticktide_snapshots_total", "State snapshots written to the changelog", ["consumer"])
LAST_EVENT_TS = Gauge("ticktide_last_event_timestamp_seconds",
                      "Market time (ts_event) of the latest input, per consumer", ["consumer"])
UP = Gauge("ticktide_up", "1 while the component runs", ["consumer"])


def serve_metrics(port: int | None, addr: str = "0.0.0.0") -> None:
    """Serve /metrics on ``port`` in a background thread; None or negative disables it."""
    if port is None or port < 0:
        return
    try:
        start_http_server(port, addr=addr)
    except OSError as exc:
        from streaming.commandline import CommandError

        raise CommandError(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}",
                           "choose another --metrics-port, or stop what uses it") from exc
    log.info("metrics on http://%s:%d/metrics", addr, port)
