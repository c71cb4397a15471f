"""Live feeds: one venue's websocket to ``ticks.v1``.

- ``connection``: ``FeedConnection`` (subscribe, heartbeat, silence watchdog,
  reconnect with backoff, validation, publish);
- ``sequencing``: pure sequence tracking per venue and the reconnect backoff;
- ``failover``: primary/fallback feeds per symbol.
"""
