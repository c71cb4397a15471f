"""AlertsProcessor: alerts.v1 and health.v1 -> webhooks and email (and health alerts to alerts.v1).

- An Alert read from alerts.v1 passes the deduplicator (``policy``), then,
  for every destination whose minimum severity it meets, that destination's
  rate limiter; admitted alerts are handed to the ``Dispatcher`` (background
  thread) which delivers them with retries. ``process`` itself does no I/O
  and never waits for a delivery.
- Health events feed the ``HealthMonitor``; the timer (``tick``) checks for
  silent components and stale feeds. The alerts they raise are published to
  alerts.v1 like any other component's, and delivered when read back, so
  every alert goes through the same dedup/rate limit and is visible to
  subscribers.
- Not stateful: the dedup memory is in process. Offsets are committed
  before delivery finishes (at-least-once on the bus, at-most-once to the
  world across a crash); a replay after a restart may re-send alerts younger
  than the dedup window.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

from streaming.metrics import counter

from consumers.alerts.config import SEVERITY_RANK, AlertsConfig
from consumers.alerts.delivery import Dispatcher, make_destination
from consumers.alerts.health import HealthMonitor
from consumers.alerts.policy import Deduplicator, RateLimiter
from schemas.events import Alert, Health
from schemas.topics import ALERTS, HEALTH
from streaming.processor import Envelope, Output, Processor, ProcessResult

log = logging.getLogger(__name__)

SUPPRESSED = counter("ticktide_alerts_suppressed_total", "Alerts not sent, per reason and destination",
                     ["reason", "destination"])


class AlertsProcessor(Processor):
    name = "alerts"
    inputs = (ALERTS.name, HEALTH.name)
    outputs = (ALERTS.name,)
    stateful = False

    def __init__(self, config: AlertsConfig | None = None, clock: Callable[[], int] = time.time_ns,
                 dispatcher: Dispatcher | None = None) -> None:
        self.config = config or AlertsConfig()
        self.clock = clock
        dests = [d for d in self.config.destinations if d.enabled]
        self.dest_configs = {d.name: d for d in dests}
        self.dispatcher = dispatcher or Dispatcher(
            [make_destination(d, self.config.retry) for d in dests], self.config.retry)
        self.dedup = Deduplicator(self.config.dedup_window_s)
        self.limiters = {d.name: RateLimiter(d.max_per_window, d.window_s) for d in dests}
        self.monitor = HealthMonitor(self.config.health, source=self.name)

    def route(self, alert: Alert, now_ns: int) -> list[str]:
        """Destinations this alert goes to (dedup and rate limits applied); submits them."""
        # repeats are judged in event time, like the cooldowns that raise alerts, so a replay or
        # backfill sends what live would have sent; the rate limit below is about real volume
        if not self.dedup.admit(alert, alert.ts_event or now_ns):
            SUPPRESSED.labels("duplicate", "").inc()
            return []
        sent = []
        for name, d in self.dest_configs.items():
            minimum = d.min_severity or self.config.min_severity
            if SEVERITY_RANK[alert.severity] < SEVERITY_RANK[minimum]:
                SUPPRESSED.labels("severity", name).inc()
                continue
            limiter = self.limiters[name]
            if not limiter.admit(now_ns):
                SUPPRESSED.labels("rate_limited", name).inc()
                continue
            self.dispatcher.submit(name, alert, limiter.take_suppressed())
            sent.append(name)
        return sent

    def process(self, batch: Sequence[Envelope]) -> ProcessResult:
        result = ProcessResult()
        now = self.clock()
        for env in batch:
            ev = env.event
            if isinstance(ev, Alert):
                self.route(ev, now)
            elif isinstance(ev, Health):
                if self.config.health.enabled and ev.component != self.name:
                    result.outputs.extend(Output(ALERTS.name, a) for a in self.monitor.observe(ev, now))
            else:
                result.rejected.append((env, f"alerts does not handle {type(ev).__name__}"))
        return result

    def tick(self, now_ns: int) -> ProcessResult:
        if not self.config.health.enabled:
            return ProcessResult()
        return ProcessResult(outputs=[Output(ALERTS.name, a) for a in self.monitor.check(self.clock())])

    def close(self) -> None:
        self.dispatcher.close()
