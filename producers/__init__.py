"""Ingest: exchange (or simulated, or recorded) websocket frames to canonical ticks on ``ticks.v1``.

By concern:

- ``venues``: the adapter interface (``base``), the registry and one module per
  venue (``binance``, ``binance_usdm``, ``coinbase``, ``kraken``), each a pure
  ``parse(frame, ts_recv)``;
- ``fastpath``: the compiled ingest path for Binance frames (byte scan + encoder);
- ``validation``: the declarative rules, the ``Validator`` and its vectorised twin;
- ``feed``: the live connection manager, sequencing and failover;
- ``recordings``: reading recorded sessions, replaying them, ``ticktide normalize``;
- ``simulator``: the seeded market simulator server;
- ``outcomes``: dead letters and run counts shared by the parse paths;
- ``metrics``: the producers' Prometheus collectors;
- ``commands``/``live_commands``: the ``normalize``, ``simulator``, ``produce``,
  ``replay`` subcommands.
"""
