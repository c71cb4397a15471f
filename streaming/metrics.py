"""Prometheus metrics every process exports on ``/metrics``.

One definition per metric name for the whole code base: producers and
consumers import from here so two modules never register the same name.
"""

from __future__ import annotations

import logging

import json
import threading
from wsgiref.simple_server import make_server

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

log = logging.getLogger(__name__)

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
BUS_UP = Gauge("ticktide_bus_up", "1 while the message broker answers this process, 0 while it cannot be reached",
               ["role"])
BUS_LAST_CONTACT = Gauge("ticktide_bus_last_contact_timestamp_seconds",
                         "Wall-clock time the broker last answered this process", ["role"])


def health_report() -> dict:
    """The process's own health answer: ``degraded`` with the reason while its broker is away."""
    from streaming.connectivity import degraded_reasons, role

    reasons = degraded_reasons()
    body = {"status": "degraded" if reasons else "ok", "role": role()}
    if reasons:
        body["reason"] = "; ".join(reasons)
    return body


def serve_metrics(port: int | None, addr: str = "0.0.0.0") -> None:
    """Serve /metrics and /health on ``port`` in a background thread; None or negative disables it."""
    if port is None or port < 0:
        return
    metrics_app = make_wsgi_app(REGISTRY)

    def app(environ, start_response):
        if environ.get("PATH_INFO") == "/health":
            body = json.dumps(health_report()).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return metrics_app(environ, start_response)

    server = make_server(addr, port, app, ThreadingWSGIServer, handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics on http://%s:%d/metrics, health on /health", addr, port)
