"""Binance USD-M futures adapter (``wss://fstream.binance.com``).

Same payload shapes as spot (see :mod:`producers.venues.binance`) with these
differences:

- ``<sym>@trade`` carries ``X``, the trade type. Only ``X == "MARKET"``
  (order-book trades) become ticks. ``INSURANCE_FUND`` (liquidation fills
  taken by the insurance fund), ``ADL`` (auto-deleverage transfers) and ``NA``
  are not prints on the order book and would corrupt VWAP, volume and last
  price features, so such frames are **skipped** with
  ``skipped="non_market_trade"`` (counted, not dead-lettered). A trade frame
  without ``X`` (older payloads) is treated as a market trade.
- ``bookTicker`` carries ``e``, ``E`` (event time) and ``T`` (transaction
  time): ``ts_event`` = ``T`` (falling back to ``E``).
- ``aggTrade`` is identical to spot.

Default streams are ``aggTrade`` and ``bookTicker`` (both long documented for
USD-M); pass ``streams=("trade", "bookTicker")`` for the raw trade stream.
"""

from __future__ import annotations

from producers.venues.binance import BinanceAdapter


class BinanceUsdmAdapter(BinanceAdapter):
    name = "binance-usdm"
    default_url = "wss://fstream.binance.com/stream"
    streams = ("aggTrade", "bookTicker")
    require_market_trades = True


Adapter = BinanceUsdmAdapter
