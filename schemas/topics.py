"""The topic catalogue: every topic, its key, partitions, retention and value type.

docker-compose's topic-creation service, the Kafka bus and the tests all read
this table, so a topic exists in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from schemas.events import (
    Alert, Bar, DeadLetter, FeatureVector, Fill, Health, Order, RebalanceReport, RiskUpdate,
    Signal, StressRequest, TargetPortfolio, Tick,
)

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class Topic:
    name: str
    value_type: type[msgspec.Struct] | None  # None: opaque bytes (changelogs)
    key: str | None  # the field that keys the record; None means unkeyed
    partitions: int = 3
    retention_ms: int = 7 * DAY_MS  # -1 keeps forever
    compacted: bool = False
    # None: from the cluster (1 and 1 on a single broker, 3 and 2 on three or more)
    replication_factor: int | None = None
    min_insync_replicas: int | None = None

    @property
    def config(self) -> dict[str, str]:
        """Kafka topic configs, as kafka-topics --config wants them."""
        if self.compacted:
            return {"cleanup.policy": "compact"}
        return {"cleanup.policy": "delete", "retention.ms": str(self.retention_ms)}


def replication_for(brokers: int) -> tuple[int, int]:
    """Default (replication factor, min.insync.replicas) on a cluster of ``brokers``: 3/2 from three
    brokers on (a write survives one broker down; acks=all waits for 2), else 1/1."""
    return (3, 2) if brokers >= 3 else (1, 1)


TICKS = Topic("ticks.v1", Tick, "symbol", partitions=6, retention_ms=2 * DAY_MS)
BARS = Topic("bars.v1", Bar, "symbol", partitions=6, retention_ms=-1)
FEATURES = Topic("features.v1", FeatureVector, "symbol", partitions=6, retention_ms=2 * DAY_MS)
SIGNALS = Topic("signals.v1", Signal, "symbol", partitions=3)
TARGETS = Topic("targets.v1", TargetPortfolio, "portfolio_id", partitions=1, retention_ms=-1)
REBALANCES = Topic("rebalances.v1", RebalanceReport, "portfolio_id", partitions=1, retention_ms=-1)
ORDERS = Topic("orders.v1", Order, "portfolio_id", partitions=1, retention_ms=-1)
FILLS = Topic("fills.v1", Fill, "portfolio_id", partitions=1, retention_ms=-1)
RISK = Topic("risk.v1", RiskUpdate, "portfolio_id", partitions=1)
RISK_REQUESTS = Topic("risk-requests.v1", StressRequest, "portfolio_id", partitions=1, retention_ms=DAY_MS)
ALERTS = Topic("alerts.v1", Alert, None, partitions=1, retention_ms=30 * DAY_MS)
DLQ = Topic("dlq.v1", DeadLetter, None, partitions=1, retention_ms=30 * DAY_MS)
HEALTH = Topic("health.v1", Health, "component", partitions=1, retention_ms=DAY_MS)

CATALOGUE: dict[str, Topic] = {
    t.name: t
    for t in (TICKS, BARS, FEATURES, SIGNALS, TARGETS, REBALANCES, ORDERS, FILLS, RISK, RISK_REQUESTS,
              ALERTS, DLQ, HEALTH)
}


def changelog_topic(consumer: str, group: str | None = None) -> Topic:
    """The compacted state changelog of one consumer group: ``changelog.<group>.<consumer>.v2``.

    Named per group (the group defaults to the consumer's name), so a new group starts from
    empty state and two groups never share state. Keyed by partition or item (symbol); the records
    of input partition p are in changelog partition p (``streaming.changelog``). v1 spread them by
    key hash and was written beside per-batch commits: v2 is a new topic, and a group upgraded
    from v1 rebuilds its state from its inputs (publishing nothing it already published).
    """
    return Topic(f"changelog.{group or consumer}.{consumer}.v2", None, "partition", partitions=6, compacted=True)


CHANGELOG_CONSUMERS = ("features", "signals", "risk", "portfolio", "execution")
for _name in CHANGELOG_CONSUMERS:  # the default groups' changelogs
    _t = changelog_topic(_name)
    CATALOGUE[_t.name] = _t


def lookup(name: str) -> Topic | None:
    """The catalogue entry of ``name``, including any group's changelog; None if unknown."""
    if name in CATALOGUE:
        return CATALOGUE[name]
    parts = name.split(".")
    if len(parts) >= 4 and parts[0] == "changelog" and parts[-1] == "v2":  # any consumer's, built in or not
        return changelog_topic(parts[-2], ".".join(parts[1:-2]))
    return None


def topic(name: str) -> Topic:
    info = lookup(name)
    if info is None:
        raise KeyError(f"unknown topic {name!r}; known: {', '.join(sorted(CATALOGUE))}")
    return info
