"""FeatureVectors of real market data (tests/data, see SOURCES.md), through the features consumer.

For the signals tests and ``bench/bench_signals.py``: the vectors the signals
consumer reads in production are what ``FeaturesProcessor`` publishes, so the
real recordings go through it (its Envelope path, the reference):

- ``btcusdt_vectors``: the 9,757 BTCUSDT trades of spot_btcusdt_20240808
  (Binance, 2024-08-09, about 6 minutes), one vector per trade;
- ``daily_vectors``: the adjusted daily closes of stock_prices_20.csv (20 US
  equities), one bar per symbol and day, interleaved by day as a replay
  publishes them.
"""

from __future__ import annotations

import csv
import gzip
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from schemas.events import Bar, FeatureVector, Tick
from streaming.processor import Envelope

DATA = Path(__file__).resolve().parent / "data"


def btcusdt_trades(limit: int | None = None) -> list[Tick]:
    out: list[Tick] = []
    with gzip.open(DATA / "spot_btcusdt_20240808.ndjson.gz", "rt") as f:
        for line in f:
            ns, frame = line.split(" ", 1)
            if '"btcusdt@trade"' not in frame:
                continue
            d = json.loads(frame)["data"]
            out.append(Tick(symbol="BTCUSDT", venue="BINANCE", kind="trade", ts_event=int(d["T"]) * 1_000_000,
                            ts_recv=int(ns), price=float(d["p"]), size=float(d["q"]),
                            side="sell" if d["m"] else "buy", trade_id=str(d["t"])))
            if limit is not None and len(out) == limit:
                break
    return out


def daily_bars(symbols: Sequence[str] | None = None, days: int | None = None) -> list[Bar]:
    with (DATA / "stock_prices_20.csv").open() as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    if days is not None:
        body = body[-days:]
    bars: list[Bar] = []
    for row in body:
        ts = int(datetime.fromisoformat(row[0]).replace(tzinfo=timezone.utc).timestamp()) * 10**9
        for sym, cell in zip(header[1:], row[1:]):
            if cell and (symbols is None or sym in symbols):
                p = float(cell)
                bars.append(Bar(symbol=sym, ts_event=ts, open=p, high=p, low=p, close=p, volume=1000.0))
    return bars


def feature_vectors(events: Sequence[Tick | Bar]) -> list[FeatureVector]:
    """What the features consumer publishes for ``events`` (one partition, default config)."""
    from consumers.features.processor import FeaturesProcessor

    proc = FeaturesProcessor(clock=lambda: 0)
    topic = "bars.v1" if events and isinstance(events[0], Bar) else "ticks.v1"
    out = proc.process([Envelope(topic, 0, i, e.symbol.encode(), e) for i, e in enumerate(events)])
    assert not out.rejected, out.rejected[:3]
    return [o.event for o in out.outputs]


def btcusdt_vectors(limit: int | None = None) -> list[FeatureVector]:
    return feature_vectors(btcusdt_trades(limit))


def daily_vectors(symbols: Sequence[str] | None = None, days: int | None = None) -> list[FeatureVector]:
    return feature_vectors(daily_bars(symbols, days))
