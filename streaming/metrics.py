"""Prometheus metrics every process exports on ``/metrics``.

One definition per metric name for the whole code base: producers and
consumers import from here (or declare their own with :func:`counter`,
:func:`gauge`, :func:`histogram`) so two modules never register the same name.

A family is registered when it is first used, not when its module is
imported, so a process exports only the families of what it runs (the
producer's ``/metrics`` carries no signal or alert families). And it is
registered in the registry of the current context: :func:`private_registry`
gives a backtest (a workflow job inside the gateway, ``ticktide workflow
run``) a registry of its own, so the live process's families never see the
job's values and nothing is left behind when it ends.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
import weakref
from typing import Any, Iterator
from wsgiref.simple_server import make_server

import numpy as np
from prometheus_client import (REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics,
                               make_wsgi_app)
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

log = logging.getLogger(__name__)

# no `<name>_created` series next to every counter and histogram: nothing here queries them and
# they double the series a scrape returns (set at import: every process that exports metrics imports this)
disable_created_metrics()

_current: contextvars.ContextVar[CollectorRegistry] = contextvars.ContextVar("ticktide_metrics", default=REGISTRY)


class Family:
    """A metric family declared once, created per registry on first use (see the module docstring).

    Behaves like the prometheus_client metric it wraps: ``.labels(...)``, ``.inc()``, ``.set()``...
    """

    def __init__(self, kind: type, name: str, doc: str, labels: tuple[str, ...] = (), **options: Any) -> None:
        self.kind, self.name, self.doc, self.labelnames, self.options = kind, name, doc, tuple(labels), options
        self._per_registry: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._last: tuple[CollectorRegistry | None, Any] = (None, None)  # the hot path: one registry

    def metric(self, registry: CollectorRegistry | None = None) -> Any:
        registry = registry if registry is not None else _current.get()
        last_registry, last_metric = self._last
        if registry is last_registry:
            return last_metric
        with self._lock:
            metric = self._per_registry.get(registry)
            if metric is None:
                metric = self.kind(self.name, self.doc, self.labelnames, registry=registry, **self.options)
                self._per_registry[registry] = metric
        self._last = (registry, metric)
        return metric

    def labels(self, *values: str, **kv: str) -> Any:
        return self.metric().labels(*values, **kv)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.metric(), attr)


FAMILIES: dict[str, Family] = {}


def declare(kind: type, name: str, doc: str, labels=(), **options: Any) -> Family:
    existing = FAMILIES.get(name)
    if existing is not None:  # declared by another module: one family per name
        if existing.kind is not kind or existing.labelnames != tuple(labels):
            raise ValueError(f"metric {name} declared twice with different types or labels")
        return existing
    family = FAMILIES[name] = Family(kind, name, doc, tuple(labels), **options)
    return family


def counter(name: str, doc: str, labels=()) -> Family:
    return declare(Counter, name, doc, labels)


def gauge(name: str, doc: str, labels=()) -> Family:
    return declare(Gauge, name, doc, labels)


def histogram(name: str, doc: str, labels=(), buckets=Histogram.DEFAULT_BUCKETS) -> Family:
    return declare(Histogram, name, doc, labels, buckets=buckets)


def register(*families: Family) -> None:
    """Register these families now (a process's own, before their first value), in the current registry."""
    for family in families:
        family.metric()


@contextlib.contextmanager
def private_registry() -> Iterator[CollectorRegistry]:
    """Within this block (and the tasks and ``asyncio.to_thread`` calls started in it) every family
    records into a fresh registry of its own, dropped afterwards."""
    registry = CollectorRegistry(auto_describe=True)
    token = _current.set(registry)
    try:
        yield registry
    finally:
        _current.reset(token)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

EVENTS_IN = counter("ticktide_events_in_total", "Input events read, per consumer and topic", ["consumer", "topic"])
EVENTS_OUT = counter("ticktide_events_out_total", "Events published, per component and topic", ["consumer", "topic"])
BATCH_SIZE = histogram("ticktide_batch_size", "Records per processed batch", ["consumer"], buckets=BATCH_BUCKETS)
PROCESSING_SECONDS = histogram(
    "ticktide_processing_seconds",
    "Time to decode, process and publish one batch (exactly-once: and commit its transaction)",
    ["consumer"], buckets=LATENCY_BUCKETS)
END_TO_END_SECONDS = histogram(
    "ticktide_end_to_end_latency_seconds",
    "Wall-clock time from ingest (a tick's receive stamp) to publishing a derived event, every event",
    ["consumer", "topic"], buckets=LATENCY_BUCKETS)
CONSUMER_LAG = gauge("ticktide_consumer_lag", "Messages behind the end of an assigned partition",
                     ["consumer", "topic", "partition"])
DEAD_LETTERS = counter("ticktide_dead_letters_total", "Inputs sent to dlq.v1, per stage", ["stage"])
ERRORS = counter("ticktide_errors_total", "Inputs that failed processing, per component", ["consumer"])
STATE_BYTES = gauge("ticktide_state_bytes", "Bytes in the last state snapshot, per consumer", ["consumer"])
SNAPSHOTS = counter("ticktide_snapshots_total", "State snapshots written to the changelog", ["consumer"])
LAST_EVENT_TS = gauge("ticktide_last_event_timestamp_seconds",
                      "Market time (ts_event) of the latest input, per consumer", ["consumer"])
UP = gauge("ticktide_up", "1 while the component runs", ["consumer"])
BUS_UP = gauge("ticktide_bus_up", "1 while the message broker answers this process, 0 while it cannot be reached",
               ["role"])
BUS_LAST_CONTACT = gauge("ticktide_bus_last_contact_timestamp_seconds",
                         "Wall-clock time the broker last answered this process", ["role"])


_role = "ticktide"
# callables that return why the process is degraded (streaming.connectivity adds the broker's)
HEALTH_SOURCES: list = []


def set_role(role: str) -> None:
    """Name this process's role (``features``, ``producer``, ``gateway``...) for its health and bus gauges."""
    global _role
    _role = role


def role() -> str:
    return _role


def health_report() -> dict:
    """The process's own health answer: ``degraded`` with the reasons (e.g. its broker is away)."""
    reasons = [r for source in HEALTH_SOURCES for r in source()]
    body = {"status": "degraded" if reasons else "ok", "role": _role}
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

    try:
        server = make_server(addr, port, app, ThreadingWSGIServer, handler_class=_SilentHandler)
    except OSError as exc:
        from streaming.errors import CommandError

        raise CommandError(f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}",
                           "choose another --metrics-port, or stop what uses it") from exc
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    log.info("metrics on http://%s:%d/metrics, health on /health", addr, port)


class Children:
    """Label children resolved once and kept: ``labels()`` costs a lock and a dict look-up
    per call, too much per message on the hot path."""

    def __init__(self) -> None:
        self._cache: dict[tuple, object] = {}

    def __call__(self, metric, *labels: str):
        key = (id(metric), labels)
        child = self._cache.get(key)
        if child is None:
            child = self._cache[key] = metric.labels(*labels)
        return child

    def forget(self, metric, *labels: str) -> None:
        self._cache.pop((id(metric), labels), None)


def observe_latencies(child, now_ns: int, stamps_ns) -> None:
    """Every ``now_ns - stamp`` (seconds; stamps of 0 are unknown and skipped) into the histogram
    ``child`` at once, so the distribution is per event, not per batch, for ~0.01 µs an event:
    bucket counts by numpy, then one increment per bucket. Equal to ``observe`` per value
    (a parity test checks it against the pinned prometheus-client, whose internals it uses)."""
    stamps = np.asarray(stamps_ns, dtype=np.int64)
    stamps = stamps[stamps != 0]
    if not stamps.size:
        return
    seconds = np.maximum(now_ns - stamps, 0) / 1e9
    bounds = np.asarray(child._upper_bounds, dtype=np.float64)
    counts = np.bincount(np.searchsorted(bounds, seconds, side="left"), minlength=len(bounds))
    for i in np.flatnonzero(counts).tolist():  # the first bucket whose bound is >= the value, as observe()
        child._buckets[i].inc(int(counts[i]))
    child._sum.inc(float(seconds.sum()))
