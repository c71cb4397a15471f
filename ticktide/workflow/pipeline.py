"""Replay daily bars through the live consumers on a bus, one stage at a time.

The stages are the very processors ``ticktide consume`` runs (features,
portfolio, execution, risk), each driven by the same ``Runner`` and its own
steps (decode, process, dead letters, publish, checkpoints): ``Runner.drain``
runs them until a stage has read its inputs to their end (exact end offsets,
on Kafka too), without the loop's wall-clock timers. For every day: publish the
day's bars to bars.v1, then drain features, portfolio, execution and risk in
that order, so the run is deterministic and two runs give the same results.
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
import pandas as pd

from schemas.events import Fill, Order, RebalanceReport, RiskUpdate, TargetPortfolio, Alert, FeatureVector
from schemas.topics import ALERTS, BARS, DLQ, FEATURES, FILLS, HEALTH, ORDERS, REBALANCES, RISK, TARGETS
from streaming import metrics
from streaming.bus import open_bus
from streaming.codec import decode, encode, key_for
from streaming.runner import Runner, RunnerSettings
from ticktide.workflow.data import PriceData, bars_for_day


@dataclass
class Collected:
    features: list[FeatureVector] = field(default_factory=list)
    targets: list[TargetPortfolio] = field(default_factory=list)
    reports: list[RebalanceReport] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    risk: list[RiskUpdate] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    dead_letters: int = 0


TOPICS_USED = [BARS.name, FEATURES.name, TARGETS.name, REBALANCES.name, ORDERS.name, FILLS.name, RISK.name,
               ALERTS.name, DLQ.name, HEALTH.name]


def job_bus_url(url: str, run_id: str) -> str:
    """On Kafka, a backtest's topics get a prefix of their own (``workflow-<run>.``): it never
    publishes to the live topics (alerts.v1 is routed to people) nor reads them."""
    if not url.startswith("kafka://"):
        return url
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["prefix"] = query.get("prefix", os.environ.get("TICKTIDE_TOPIC_PREFIX", "")) + f"workflow-{run_id}."
    return urlunsplit(parts._replace(query=urlencode(query)))


def _open(url: str):
    if url.startswith("memory://"):
        from streaming.bus.memory import MemoryBus

        return MemoryBus(url)  # a fresh embedded bus per run: nothing left from an earlier one
    return open_bus(url)


class Progress:
    """The day-by-day progress bar (tqdm) on stderr, drawn only on a terminal: pipes and logs stay clean."""

    def __init__(self, total: int, enabled: bool = True, stream=None):
        from tqdm import tqdm

        self.stream = stream or sys.stderr
        is_tty = getattr(self.stream, "isatty", lambda: False)()
        self.bar = tqdm(total=total, unit="day", file=self.stream, disable=not (enabled and is_tty),
                        leave=True, dynamic_ncols=True)
        self._done = 0

    def update(self, done: int, label: str = "") -> None:
        if self.bar.disable:
            return
        self.bar.set_postfix_str(label, refresh=False)
        self.bar.update(done - self._done)
        self._done = done
        if done >= self.bar.total:
            self.bar.close()



async def replay(data: PriceData, close: pd.DataFrame, processors: list, bus_url: str = "memory://",
                 progress: Progress | None = None,
                 on_day: Callable[[pd.Timestamp], None] | None = None) -> Collected:
    """Publish ``close`` day by day to bars.v1 and drain every stage after each day.

    A backtest never touches live telemetry: its stages record their metrics in a registry of
    their own (dropped when it ends) and, on Kafka, use topics of their own (:func:`job_bus_url`).
    """
    with metrics.private_registry():
        return await _replay(data, close, processors, bus_url, progress, on_day)


async def _replay(data: PriceData, close: pd.DataFrame, processors: list, bus_url: str,
                  progress: Progress | None, on_day: Callable[[pd.Timestamp], None] | None) -> Collected:
    run_id = uuid.uuid4().hex[:8]
    if bus_url.startswith("memory://"):
        bus_url = f"memory://workflow-{run_id}"
    bus = _open(job_bus_url(bus_url, run_id))
    await bus.start()
    await bus.ensure_topics(TOPICS_USED)
    settings = lambda p: RunnerSettings(group=f"workflow-{run_id}-{p.name}", max_records=5000,  # noqa: E731
                                        poll_timeout_ms=0 if bus_url.startswith("memory://") else 200,
                                        instance=f"workflow-{p.name}")
    stages = [Runner(p, bus, settings(p)) for p in processors]
    try:
        for s in stages:
            await s.open()
        for i, (day, row) in enumerate(close.iterrows(), 1):
            for bar in bars_for_day(data, row, day):
                await bus.publish(BARS.name, key_for(BARS.name, bar), encode(bar))
            await bus.flush()
            for s in stages:
                await s.drain()
            if progress is not None:
                progress.update(i, day.date().isoformat())
            if on_day is not None:
                on_day(day)
        out = Collected()
        for topic, dest in ((FEATURES.name, out.features), (TARGETS.name, out.targets),
                            (REBALANCES.name, out.reports), (ORDERS.name, out.orders),
                            (FILLS.name, out.fills), (RISK.name, out.risk), (ALERTS.name, out.alerts)):
            records = sorted(await bus.read_all(topic), key=lambda r: (r.partition, r.offset))
            for r in records:
                try:
                    dest.append(decode(topic, r.value))
                except (msgspec.DecodeError, msgspec.ValidationError):
                    continue
        out.dead_letters = len(await bus.read_all(DLQ.name))
        return out
    finally:
        for s in stages:
            await s.close()
        try:  # a backtest leaves nothing behind on a shared broker
            await bus.delete_topics(list(dict.fromkeys(
                [*TOPICS_USED, *(t for s in stages for t in (*s.processor.inputs, *s.processor.outputs)),
                 *(s.changelog.name for s in stages if s.processor.stateful)])))
        finally:
            await bus.close()
