"""The compiled ingest path for Binance frames: raw bytes straight to encoded ticks.

- ``bytescan``: JSON byte-scanning primitives (Numba, raw pointers);
- ``binance_scan``: trade and bookTicker frames -> numeric columns + encoded Ticks;
- ``binance_encode``: ``ChunkEncoder``, a chunk of frames -> validated JSON lines
  and dead letters, byte for byte what the reference path
  (``producers.venues.binance`` + ``producers.validation``) writes.
"""
