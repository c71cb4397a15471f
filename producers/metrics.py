"""Prometheus metrics of the producers: websocket feeds, data quality, failover.

Process-wide collectors; the plain per-connection counters are
``producers.feed.connection.FeedStats``. Dead letters are counted by the one
definition in ``streaming.metrics``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from streaming.metrics import DEAD_LETTERS, declare  # noqa: F401 - the producers count dead letters here too


def metric(kind: type, name: str, doc: str, labels: list[str]):
    """One family per name, registered when first used (``streaming.metrics``): a process that
    never runs a feed exports none of these."""
    return declare(kind, name, doc, labels)


# websocket feeds and data quality (producers.feed.connection)
WS_FRAMES = metric(Counter, "ticktide_ws_frames_total", "Websocket frames received", ["venue"])
WS_RECONNECTS = metric(Counter, "ticktide_ws_reconnects_total",
                       "Websocket reconnect attempts after a lost or failed connection", ["venue"])
WS_GAPS = metric(Counter, "ticktide_ws_gaps_total", "Sequence gaps detected", ["venue", "symbol"])
WS_MISSING = metric(Counter, "ticktide_ws_missing_messages_total",
                    "Messages missing inside detected sequence gaps", ["venue", "symbol"])
WS_DUPLICATES = metric(Counter, "ticktide_ws_duplicates_total",
                       "Ticks dropped because their sequence number was already seen", ["venue"])
WS_SILENCES = metric(Counter, "ticktide_ws_silence_timeouts_total",
                     "Connections closed by the silence watchdog", ["venue"])
WS_CONNECTED = metric(Gauge, "ticktide_ws_connected", "1 while the feed's websocket is open", ["venue"])
SKIPPED = metric(Counter, "ticktide_producer_skipped_total",
                 "Frames that yielded no tick on purpose (acks, heartbeats, book frames)", ["venue", "reason"])
TICKS_OUT = metric(Counter, "ticktide_producer_ticks_total", "Ticks published to ticks.v1", ["venue"])
REJECTED = metric(Counter, "ticktide_producer_rejected_total",
                  "Ticks rejected by the validator (sent to dlq.v1)", ["venue"])
LAST_TICK = metric(Gauge, "ticktide_feed_last_tick_timestamp_seconds",
                   "Wall-clock receive time of the latest tick, per venue and symbol", ["venue", "symbol"])
QUALITY_COMPLETENESS = metric(Gauge, "ticktide_quality_completeness",
                              "Validator completeness score (0..1) per symbol", ["symbol"])
QUALITY_VALIDITY = metric(Gauge, "ticktide_quality_validity",
                          "Validator validity score (0..1) per symbol", ["symbol"])

# failover (producers.feed.failover)
FAILOVER_ACTIVE = metric(Gauge, "ticktide_failover_active",
                         "1 while a symbol is served by its fallback feed", ["symbol"])
FAILOVER_SWITCHES = metric(Counter, "ticktide_failover_switches_total",
                           "Switches between primary and fallback feeds", ["symbol", "to"])
FAILOVER_DROPPED = metric(Counter, "ticktide_failover_suppressed_total",
                          "Ticks not published because the other feed is active", ["venue"])
