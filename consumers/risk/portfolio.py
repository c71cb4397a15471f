"""Portfolio book keeping: positions and cash from fills, marks, sampled equity. Pure.

- A buy fill adds ``quantity`` and takes ``quantity * price + fee`` from cash;
  a sell does the opposite (fee always costs). Quantities are signed
  (shorts allowed).
- Marks are the latest price per symbol, in event time: an older mark never
  replaces a newer one (so a replayed input cannot move a mark back). A
  position without a mark is valued at its last fill price.
- Equity (and every marked symbol's price) is sampled once per
  ``interval_ns`` of event time: the last value seen in a bucket closes it.
  Returns for the metrics are taken over the closed samples plus the current
  (still open) one, so the first update of a day already reflects it.
- P&L = value - initial cash (realized and unrealized, after fees).
"""

from __future__ import annotations

from typing import Mapping

import msgspec

from schemas.events import Fill


class Sampler(msgspec.Struct):
    """Last value per event-time bucket, bounded to ``maxlen`` closed samples."""

    interval_ns: int
    maxlen: int
    closed: list[float] = msgspec.field(default_factory=list)
    bucket: int | None = None
    current: float | None = None

    def observe(self, ts_event: int, value: float) -> bool:
        """Record a value; True when this closed a bucket (a new bar/day began)."""
        b = ts_event // self.interval_ns
        if self.bucket is None:
            self.bucket, self.current = b, value
            return False
        if b < self.bucket:
            return False  # late input for a closed bucket: ignored
        if b == self.bucket:
            self.current = value
            return False
        self.closed.append(self.current)
        if len(self.closed) > self.maxlen:
            del self.closed[: len(self.closed) - self.maxlen]
        self.bucket, self.current = b, value
        return True

    def series(self) -> list[float]:
        return self.closed + ([self.current] if self.current is not None else [])


class Mark(msgspec.Struct, array_like=True):
    price: float
    ts: int


class Book(msgspec.Struct):
    portfolio_id: str
    initial_cash: float
    cash: float
    positions: dict[str, float] = msgspec.field(default_factory=dict)
    fill_prices: dict[str, float] = msgspec.field(default_factory=dict)
    fees: float = 0.0
    fills: int = 0
    last_ts: int = 0
    equity: Sampler | None = None
    seen_fills: list[str] = msgspec.field(default_factory=list)  # recent fill ids (replay dedupe)

    def apply(self, fill: Fill) -> bool:
        """Apply a fill once; False if this fill_id was already applied."""
        if fill.fill_id in self.seen_fills:
            return False
        self.seen_fills.append(fill.fill_id)
        if len(self.seen_fills) > 10_000:
            del self.seen_fills[:5_000]
        qty = fill.quantity if fill.side == "buy" else -fill.quantity
        self.positions[fill.symbol] = self.positions.get(fill.symbol, 0.0) + qty
        if abs(self.positions[fill.symbol]) < 1e-12:
            del self.positions[fill.symbol]
        self.cash -= qty * fill.price + fill.fee
        self.fees += fill.fee
        self.fill_prices[fill.symbol] = fill.price
        self.fills += 1
        self.last_ts = max(self.last_ts, fill.ts_event)
        return True

    def price(self, symbol: str, marks: Mapping[str, Mark]) -> float:
        m = marks.get(symbol)
        return m.price if m is not None else self.fill_prices.get(symbol, 0.0)

    def market_values(self, marks: Mapping[str, Mark]) -> dict[str, float]:
        return {s: q * self.price(s, marks) for s, q in sorted(self.positions.items())}

    def value(self, marks: Mapping[str, Mark]) -> float:
        return self.cash + sum(self.market_values(marks).values())

    def exposures(self, marks: Mapping[str, Mark]) -> dict[str, float]:
        v = self.value(marks)
        if v == 0:
            return {}
        return {s: mv / v for s, mv in self.market_values(marks).items()}

    def pnl(self, marks: Mapping[str, Mark]) -> float:
        return self.value(marks) - self.initial_cash


def sector_exposures(exposures: Mapping[str, float], sectors: Mapping[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for s, e in exposures.items():
        sector = sectors.get(s, "unknown")
        out[sector] = out.get(sector, 0.0) + e
    return dict(sorted(out.items()))


def new_sampler(interval_s: float, lookback: int) -> Sampler:
    return Sampler(interval_ns=max(1, int(round(interval_s * 1e9))), maxlen=max(lookback, 1) + 1)

