"""The market simulator: a seeded market model served over a websocket in Binance's format.

- ``market_model``: pure, seeded GBM prices with jumps and bursts;
- ``server``: ``SimulatorServer`` and ``run_simulator``.
"""
