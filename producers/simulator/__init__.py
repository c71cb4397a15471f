"""The market simulator: a seeded market model served over a websocket in Binance's format.

- ``market_model``: pure, seeded GBM prices with jumps and bursts;
- ``server``: ``SimulatorServer`` and ``run_simulator``.
"""

# the defaults `ticktide simulator` and `ticktide demo` share
DEFAULT_SYMBOLS = "BTCUSDT,ETHUSDT,SOLUSDT"
DEFAULT_RATE = 50.0
DEFAULT_SEED = 7
